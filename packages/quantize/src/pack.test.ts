import { describe, expect, it } from 'vitest';
import { packQWeight, packQZeros, unpackQWeight, unpackQZeros } from './pack.js';

describe('GPTQ bit packing (AutoGPTQ order: the first value in the lowest bits)', () => {
  it('4-bit qweight packs 8 input columns per int32, along the input dimension, one column per output row', () => {
    // q [rows 2, cols 8]
    const q = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9, 0]);
    const packed = packQWeight(q, 2, 8, 4);
    expect([...packed]).toEqual([0x87654321 | 0, 0x09abcdef]);
    expect([...unpackQWeight(packed, 2, 8, 4)]).toEqual([...q]);
  });

  it('4-bit qweight with two words per row: word k holds input columns 8k..8k+7, laid out [cols/8, rows]', () => {
    const q = Uint8Array.from({ length: 16 }, (_, i) => i); // one row, 16 columns
    const packed = packQWeight(q, 1, 16, 4);
    expect([...packed]).toEqual([0x76543210, 0xfedcba98 | 0]);
    const two = packQWeight(Uint8Array.from([...q, ...q.map((v) => 15 - v)]), 2, 16, 4);
    // [cols/8 = 2, rows = 2]: word (0, row 0), word (0, row 1), word (1, row 0), word (1, row 1)
    expect([...two]).toEqual([0x76543210, 0x89abcdef | 0, 0xfedcba98 | 0, 0x01234567]);
  });

  it('8-bit qweight packs 4 values per int32, the first in the low byte', () => {
    const q = Uint8Array.from([1, 2, 3, 255, 0, 128, 7, 9]); // one row, 8 columns
    const packed = packQWeight(q, 1, 8, 8);
    expect([...packed]).toEqual([0xff030201 | 0, 0x09078000]);
    expect([...unpackQWeight(packed, 1, 8, 8)]).toEqual([...q]);
  });

  it('qzeros pack along the output dimension and store zero − 1 in the v1 format (a symmetric 4-bit grid is 0x77777777)', () => {
    const zeros = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8]); // [groups 2, rows 8]
    const v1 = packQZeros(zeros, 2, 8, 4, 1);
    expect([...v1]).toEqual([0x76543210, 0x77777777]);
    expect([...unpackQZeros(v1, 2, 8, 4, 1)]).toEqual([...zeros]);
    const v2 = packQZeros(zeros, 2, 8, 4, 0);
    expect([...v2]).toEqual([0x87654321 | 0, 0x88888888 | 0]);
    expect([...packQZeros(Int32Array.from([128, 1, 2, 255]), 1, 4, 8, 1)]).toEqual([0xfe01007f | 0]);
  });

  it('refuses what the layout cannot hold: a zero point of 0 in v1, sizes that are not whole words', () => {
    expect(() => packQZeros(Int32Array.from([0, 1, 1, 1, 1, 1, 1, 1]), 1, 8, 4, 1)).toThrow(
      /zero point 0 cannot be stored with offset 1 in 4 bits/,
    );
    expect(() => packQWeight(new Uint8Array(12), 1, 12, 4)).toThrow(/input size 12 is not a multiple of 8/);
    expect(() => packQZeros(new Int32Array(6).fill(1), 1, 6, 8, 1)).toThrow(/output size 6 is not a multiple of 4/);
    expect(() => packQWeight(new Uint8Array(8), 1, 8, 3)).toThrow(/bits 3: the packed layout takes 2, 4 or 8/);
  });
});
