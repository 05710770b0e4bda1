import { describe, expect, it } from 'vitest';
import { DecodeOps, SCRATCH_MAX_FLOATS } from './weights/decode.js';
import { fp32Format } from './weights/formats.js';
import type { DecodeKernels } from './weights/kernels.js';

// DecodeOps' scratch arrays: reused after release() by the calls made in the same order, never shared inside one
// generation, fresh above the cap; linear into a caller array. The kernels are a JS stand-in (a plain fp32 product).
const kernels = {
  linearF32(x: Float32Array, n: number, w: Float32Array, out: number, inF: number, y: Float32Array) {
    for (let r = 0; r < n; r++)
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
        y[r * out + o] = s;
      }
  },
} as unknown as DecodeKernels;

describe('DecodeOps scratch', () => {
  it('hands out distinct arrays until release, the same ones in the same order after it', () => {
    const ops = new DecodeOps(kernels);
    const a = ops.scratch(8);
    const b = ops.scratch(8);
    const c = ops.scratch(3);
    expect(a).not.toBe(b);
    expect([a.length, b.length, c.length]).toEqual([8, 8, 3]);
    ops.release();
    expect(ops.scratch(8)).toBe(a);
    expect(ops.scratch(8)).toBe(b);
    // a different length at a slot: a new array (the old one is left as it was)
    a.fill(7);
    ops.release();
    const d = ops.scratch(5);
    expect(d).not.toBe(a);
    expect(d.length).toBe(5);
    expect(a[0]).toBe(7);
  });

  it('above SCRATCH_MAX_FLOATS allocates a fresh array per call', () => {
    const ops = new DecodeOps(kernels);
    const big = ops.scratch(SCRATCH_MAX_FLOATS + 1);
    ops.release();
    const again = ops.scratch(SCRATCH_MAX_FLOATS + 1);
    // identity compared directly (toBe on arrays this long formats them, seconds)
    expect(again === big).toBe(false);
    expect(again.length).toBe(SCRATCH_MAX_FLOATS + 1);
  });

  it('linear: y = x·Wᵀ into scratch, or into the given array', () => {
    const ops = new DecodeOps(kernels);
    const w = { format: fp32Format, out: 2, in: 3, bytes: 24, f32: new Float32Array([1, 0, 0, 0, 1, 1]) };
    const x = new Float32Array([1, 2, 3]);
    const y = ops.linear(w, x, 1);
    expect(Array.from(y)).toEqual([1, 5]);
    const into = new Float32Array(2);
    expect(ops.linear(w, x, 1, into)).toBe(into);
    expect(Array.from(into)).toEqual([1, 5]);
    ops.release();
    expect(ops.linear(w, new Float32Array([2, 0, 1]), 1)).toBe(y);
    expect(Array.from(y)).toEqual([2, 1]);
  });
});
