import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors, writeSafetensors } from './safetensors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'yuan-st-'));
const data = Float32Array.from([0, 1, -2.5, 3.140625, 65504, 1e-3, -0.0001, 7]);

describe('safetensors', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`round-trips ${dtype}`, async () => {
      const file = path.join(dir, `${dtype}.safetensors`);
      await writeSafetensors(file, [{ name: 'w', shape: [2, 4], data }], { dtype, metadata: { format: 'pt' } });
      const st = await openSafetensors(file);
      expect(st.entries.get('w')).toMatchObject({ dtype, shape: [2, 4] });
      expect(st.metadata.format).toBe('pt');
      const back = await st.read('w');
      await st.close();
      const tol = dtype === 'F32' ? 0 : dtype === 'F16' ? 1e-3 : 8e-3;
      back.forEach((v, i) => expect(Math.abs(v - data[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(data[i]))));
    });
  }

  it("a tensor's own dtype overrides the file's (an exact F32 buffer in a BF16 file)", async () => {
    const file = path.join(dir, 'mixed.safetensors');
    await writeSafetensors(
      file,
      [
        { name: 'w', shape: [8], data },
        { name: 'inv_freq', shape: [8], data, dtype: 'F32' },
      ],
      { dtype: 'BF16' },
    );
    const st = await openSafetensors(file);
    expect(st.entries.get('w')?.dtype).toBe('BF16');
    expect(st.entries.get('inv_freq')?.dtype).toBe('F32');
    expect(await st.read('inv_freq')).toEqual(data);
    expect(await st.read('w')).not.toEqual(data);
    await st.close();
  });

  it('writes int32 tensors as I32 (packed quantized weights) beside float ones; readBytes gives the stored bytes', async () => {
    const file = path.join(dir, 'ints.safetensors');
    const ints = Int32Array.from([0, -1, 0x12345678, -0x80000000]);
    await writeSafetensors(file, [
      { name: 'q', shape: [2, 2], data: ints },
      { name: 's', shape: [2], data: Float32Array.from([0.5, -3]), dtype: 'F16' },
      { name: 'f', shape: [1], data: Float32Array.from([1 / 3]) },
    ]);
    const st = await openSafetensors(file);
    expect([...st.entries].map(([n, e]) => [n, e.dtype, e.readable])).toEqual([
      ['q', 'I32', false],
      ['s', 'F16', true],
      ['f', 'F32', true],
    ]);
    const bytes = await st.readBytes('q');
    expect([...new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))]).toEqual([
      ...ints,
    ]);
    expect([...(await st.read('s'))]).toEqual([0.5, -3]);
    expect([...new Uint16Array((await st.readBytes('s')).slice().buffer)]).toEqual([0x3800, 0xc200]);
    expect((await st.read('f'))[0]).toBe(Math.fround(1 / 3));
    await st.close();
  });

  it('leaves no temporary files behind', () => {
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('names the problem for truncated, missing and foreign files', async () => {
    const good = readFileSync(path.join(dir, 'F32.safetensors'));
    writeFileSync(path.join(dir, 'cut.safetensors'), good.subarray(0, good.length - 5));
    await expect(openSafetensors(path.join(dir, 'cut.safetensors'))).rejects.toThrow(
      /truncated: tensor w ends at byte/,
    );
    await expect(openSafetensors(path.join(dir, 'none.safetensors'))).rejects.toThrow(/safetensors file not found/);
    writeFileSync(path.join(dir, 'text.safetensors'), 'hello world, not a tensor file at all');
    await expect(openSafetensors(path.join(dir, 'text.safetensors'))).rejects.toThrow(
      /not a safetensors file or truncated/,
    );
  });
});
