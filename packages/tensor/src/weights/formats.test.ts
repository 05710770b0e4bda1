import { describe, expect, it } from 'vitest';
import { gptqWeight, loadDecodeKernels, type GptqData } from '../index.js';

const native = await loadDecodeKernels();

// The decode layout (GptqData.tiled) holds the same words as the GPTQ layout in another order: every method of the
// format (row lookups of a tied embedding, the dequantized matrix of the tfjs paths, the products) must read it so.
describe.skipIf(!native.kernels)('GPTQ weights in the decode layout', () => {
  it.each([
    [4, 32, 64, 48],
    [8, 16, 48, 32],
  ] as const)(
    '%i-bit, group %i, [%i in, %i out]: row, dequantize and matmul equal the GPTQ layout',
    (bits, group, inF, out) => {
      const k = native.kernels!;
      const per = 32 / bits;
      const groups = inF / group;
      const qweight = new Int32Array((inF / per) * out);
      k.randomWords(qweight, 3);
      const qzeros = new Int32Array(groups * ((out * bits) / 32));
      k.randomWords(qzeros, 4);
      const scales = Uint16Array.from({ length: groups * out }, (_, i) => 0x2c00 + (i % 97)); // fp16 0.0625 and up
      const data: GptqData = { qweight, qzeros, scales, perm: null, bits, group, zeroOffset: 1 };
      const tiledWords = new Int32Array(qweight.length);
      k.tileGptq(qweight, bits, inF, out, tiledWords);
      const plain = gptqWeight(data, out, inF);
      const tiled = gptqWeight({ ...data, qweight: tiledWords, tiled: true }, out, inF);
      expect(Array.from(tiled.format.dequantize(tiled))).toEqual(Array.from(plain.format.dequantize(plain)));
      for (const index of [0, 17, out - 1]) {
        const a = new Float32Array(inF);
        const b = new Float32Array(inF);
        plain.format.row(plain, index, a);
        tiled.format.row(tiled, index, b);
        expect(Array.from(b), `row ${index}`).toEqual(Array.from(a));
      }
      const x = Float32Array.from({ length: 3 * inF }, (_, i) => Math.sin(i));
      const ya = new Float32Array(3 * out);
      const yb = new Float32Array(3 * out);
      plain.format.matmul(plain, x, 3, ya, k);
      tiled.format.matmul(tiled, x, 3, yb, k);
      expect(Array.from(yb)).toEqual(Array.from(ya));
    },
  );
});
