import { describe, expect, it } from 'vitest';
import { DecodeOps, KvCache, SCRATCH_MAX_FLOATS } from './weights/decode.js';
import { bf16Format, fp32Format } from './weights/formats.js';
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

// linearPair and attendRows: which native calls they make (recorded by stand-in kernels), fused or not.
describe('DecodeOps one call per shared input', () => {
  const recorder = () => {
    const calls: string[] = [];
    const k = {
      linearF32(x: Float32Array, n: number, w: Float32Array, out: number, inF: number, y: Float32Array) {
        calls.push(`linearF32 ${out}`);
        (kernels as unknown as typeof k).linearF32(x, n, w, out, inF, y);
      },
      linearF32Pair(
        x: Float32Array,
        n: number,
        wa: Float32Array,
        outA: number,
        wb: Float32Array,
        outB: number,
        inF: number,
        ya: Float32Array,
        yb: Float32Array,
      ) {
        calls.push(`linearF32Pair ${outA} ${outB}`);
        (kernels as unknown as typeof k).linearF32(x, n, wa, outA, inF, ya);
        (kernels as unknown as typeof k).linearF32(x, n, wb, outB, inF, yb);
      },
      linearBf16() {
        calls.push('linearBf16');
      },
      attend(
        _q: Float32Array,
        n: number,
        qStride: number,
        k: Float32Array,
        _v: Float32Array,
        kvs: number,
        start: number,
      ) {
        calls.push(`attend n ${n} start ${start} qStride ${qStride} kvStride ${kvs} len ${k.length}`);
      },
      attendRows(
        _q: Float32Array,
        n: number,
        _qStride: number,
        ks: Float32Array[],
        _vs: Float32Array[],
        cache: Int32Array,
        seen: Int32Array,
      ) {
        calls.push(`attendRows n ${n} caches ${ks.length} cache ${Array.from(cache)} seen ${Array.from(seen)}`);
      },
    };
    return { calls, k: k as unknown as DecodeKernels };
  };
  const weight = (out: number, inF: number, seed: number) => ({
    format: fp32Format,
    out,
    in: inF,
    bytes: out * inF * 4,
    f32: Float32Array.from({ length: out * inF }, (_, i) => ((i * 7 + seed) % 5) - 2),
  });

  it('linearPair: one pair call for one format and input width, else (or unfused) two products; same values', () => {
    const a = weight(3, 2, 1);
    const b = weight(4, 2, 2);
    const x = new Float32Array([1, -2, 3, 0.5]);
    const fused = recorder();
    const [ya, yb] = new DecodeOps(fused.k, { fused: true }).linearPair(a, b, x, 2);
    expect(fused.calls).toEqual(['linearF32Pair 3 4']);
    const single = recorder();
    const ops = new DecodeOps(single.k, { fused: false });
    const [za, zb] = ops.linearPair(a, b, x, 2);
    expect(single.calls).toEqual(['linearF32 3', 'linearF32 4']);
    expect([ya, yb]).toEqual([za, zb]);
    expect(Array.from(za)).toEqual(Array.from(ops.linear(a, x, 2)));
    // another format, or another input width: two products
    const mixed = recorder();
    new DecodeOps(mixed.k, { fused: true }).linearPair(a, { ...b, format: bf16Format, bf16: new Uint16Array(8) }, x, 2);
    expect(mixed.calls).toEqual(['linearF32 3', 'linearBf16']);
  });

  it('KvCache.forPositions: the hinted capacity (at most 1024, else 16), doubling past it with the rows kept', () => {
    const capacity = (positions?: number) => KvCache.forPositions(2, positions).k.length / 2;
    expect([undefined, 24, 5000, 0, -3, NaN, 2.7].map(capacity)).toEqual([16, 24, 1024, 16, 16, 16, 2]);
    const c = KvCache.forPositions(2, 3);
    for (let i = 0; i < 4; i++) c.append(Float32Array.of(i, -i), Float32Array.of(10 + i, 0), 0, 2, 0, 2, 0);
    expect(c.length).toBe(4);
    expect(c.k.length).toBe(12);
    expect(Array.from(c.k.subarray(0, 8))).toEqual([0, -0, 1, -1, 2, -2, 3, -3]);
    expect(Array.from(c.v.subarray(0, 8))).toEqual([10, 0, 11, 0, 12, 0, 13, 0]);
  });

  it('attendRows: each row sees its cache up to its own position; unfused, one attend per run', () => {
    const width = 4;
    const filled = (len: number) => {
      const c = new KvCache(width, 2);
      const row = new Float32Array(width);
      for (let i = 0; i < len; i++) c.append(row, row, 0, width, 0, width, 0);
      return c;
    };
    // a 3-row prompt (positions 0..2 of a), one decode row of b (context 1) and of c (5 positions)
    const [a, b, c] = [filled(3), filled(1), filled(5)];
    const caches = [a, a, a, b, c];
    const q = new Float32Array(5 * width);
    const fused = recorder();
    new DecodeOps(fused.k, { fused: true }).attendRows(q, 5, width, caches, 2, 2);
    expect(fused.calls).toEqual(['attendRows n 5 caches 3 cache 0,0,0,1,2 seen 1,2,3,1,5']);
    const single = recorder();
    new DecodeOps(single.k, { fused: false }).attendRows(q, 5, width, caches, 2, 2);
    expect(single.calls).toEqual([
      `attend n 3 start 0 qStride 4 kvStride 4 len ${a.k.length}`,
      `attend n 1 start 0 qStride 4 kvStride 4 len ${b.k.length}`,
      `attend n 1 start 4 qStride 4 kvStride 4 len ${c.k.length}`,
    ]);
    // rows of one cache apart: the later row sees more
    const apart = recorder();
    new DecodeOps(apart.k, { fused: true }).attendRows(q.subarray(0, 3 * width), 3, width, [c, b, c], 2, 2);
    expect(apart.calls).toEqual(['attendRows n 3 caches 2 cache 0,1,0 seen 4,1,5']);
    expect(() => new DecodeOps(fused.k).attendRows(q, 5, width, [a], 2, 2)).toThrow('attendRows: 1 caches for 5 rows');
    expect(() => new DecodeOps(fused.k).attendRows(q, 5, width, [b, b, b, b, b], 2, 2)).toThrow(
      'attendRows: a cache holds fewer positions than its rows',
    );
  });
});
