import { YuanError } from '@yuan/core';

/**
 * Bit packing of the Hugging Face GPTQ (AutoGPTQ) layout. pack = 32/bits values share one int32, value k of a word in
 * bits [k·bits, (k+1)·bits): the first value in the lowest bits. `qweight` packs along the input dimension
 * ([cols/pack, rows]), `qzeros` along the output dimension ([groups, rows/pack]).
 */

/** Values per int32 word for `bits` (2, 4 or 8); anything else is an error. */
export function packFactor(bits: number): number {
  if (bits !== 2 && bits !== 4 && bits !== 8)
    throw new YuanError('quantize', `bits ${bits}: the packed layout takes 2, 4 or 8`);
  return 32 / bits;
}

function checkMultiple(n: number, pack: number, what: string): void {
  if (n % pack !== 0)
    throw new YuanError('quantize', `${what} ${n} is not a multiple of ${pack} (the values one int32 holds)`);
}

/** Packs integer weights q [rows, cols] (row-major, each in [0, 2^bits)) into qweight [cols/pack, rows]. */
export function packQWeight(q: Uint8Array, rows: number, cols: number, bits: number): Int32Array {
  const pack = packFactor(bits);
  checkMultiple(cols, pack, 'input size');
  const mask = (1 << bits) - 1;
  const out = new Int32Array((cols / pack) * rows);
  for (let o = 0; o < rows; o++) {
    const row = o * cols;
    for (let i = 0; i < cols; i++) out[((i / pack) | 0) * rows + o] |= (q[row + i] & mask) << (bits * (i % pack));
  }
  return out;
}

/** Unpacks qweight [cols/pack, rows] into integer weights [rows, cols] (row-major). */
export function unpackQWeight(qweight: Int32Array, rows: number, cols: number, bits: number): Uint8Array {
  const pack = packFactor(bits);
  checkMultiple(cols, pack, 'input size');
  if (qweight.length !== (cols / pack) * rows)
    throw new YuanError('quantize', `qweight holds ${qweight.length} words; [${cols / pack}, ${rows}] expected`);
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(rows * cols);
  for (let i = 0; i < cols; i++) {
    const word = ((i / pack) | 0) * rows;
    const shift = bits * (i % pack);
    for (let o = 0; o < rows; o++) out[o * cols + i] = (qweight[word + o] >>> shift) & mask;
  }
  return out;
}

/**
 * Packs zero points [groups, rows] into qzeros [groups, rows/pack], storing zero − `offset` (1 for AutoGPTQ's v1
 * `gptq` format, 0 for `gptq_v2`); a stored value outside [0, 2^bits) is an error.
 */
export function packQZeros(zeros: Int32Array, groups: number, rows: number, bits: number, offset: number): Int32Array {
  const pack = packFactor(bits);
  checkMultiple(rows, pack, 'output size');
  const maxq = (1 << bits) - 1;
  const out = new Int32Array(groups * (rows / pack));
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < rows; o++) {
      const stored = zeros[g * rows + o] - offset;
      if (stored < 0 || stored > maxq)
        throw new YuanError(
          'quantize',
          `zero point ${zeros[g * rows + o]} cannot be stored with offset ${offset} in ${bits} bits`,
        );
      out[g * (rows / pack) + ((o / pack) | 0)] |= stored << (bits * (o % pack));
    }
  }
  return out;
}

/** Unpacks qzeros [groups, rows/pack] into zero points [groups, rows] (stored value + `offset`). */
export function unpackQZeros(
  qzeros: Int32Array,
  groups: number,
  rows: number,
  bits: number,
  offset: number,
): Int32Array {
  const pack = packFactor(bits);
  checkMultiple(rows, pack, 'output size');
  if (qzeros.length !== groups * (rows / pack))
    throw new YuanError('quantize', `qzeros holds ${qzeros.length} words; [${groups}, ${rows / pack}] expected`);
  const mask = (1 << bits) - 1;
  const out = new Int32Array(groups * rows);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < rows; o++)
      out[g * rows + o] = ((qzeros[g * (rows / pack) + ((o / pack) | 0)] >>> (bits * (o % pack))) & mask) + offset;
  }
  return out;
}
