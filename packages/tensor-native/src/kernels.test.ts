import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectClose, native, onBoth, rand } from './test-util.js';
import { tf } from './tf.js';

// Every native kernel against the cpu backend's, forward and (through tf.grads) backward, on awkward shapes.
describe.skipIf(!native.info)('native kernels match the cpu backend', () => {
  it('registers the native kernels in place of the cpu ones and the rest unchanged', () => {
    for (const name of native.info!.kernels) {
      expect(tf.getKernel(name, 'native')!.kernelFunc).not.toBe(tf.getKernel(name, 'cpu')!.kernelFunc);
    }
    expect(tf.getKernel('OneHot', 'native')!.kernelFunc).toBe(tf.getKernel('OneHot', 'cpu')!.kernelFunc);
    const nativeNames = new Set(tf.getKernelsForBackend('native').map((k) => k.kernelName));
    expect(tf.getKernelsForBackend('cpu').filter((k) => !nativeNames.has(k.kernelName))).toEqual([]);
  });

  it('reports the BLAS it is linked with: the OpenMP build when built with YUAN_BLAS=openmp and Debian has it', () => {
    const blas = native.info!.blas;
    expect(blas).toMatch(/^OpenBLAS \d+\.\d+.* \((openmp|pthreads|serial)\)$/);
    const openmp = [
      '/usr/lib/x86_64-linux-gnu',
      '/usr/lib/aarch64-linux-gnu',
      '/usr/lib64',
      '/usr/lib',
      '/usr/local/lib',
    ].some((d) => existsSync(`${d}/openblas-openmp/libopenblas.so.0`));
    // The test sees the build's YUAN_BLAS when both run under one environment (set it for install and test alike);
    // LD_LIBRARY_PATH may swap the library at load time (bench/README.md's A/B does), and then it may differ.
    if (openmp && process.env.YUAN_BLAS === 'openmp' && !process.env.LD_LIBRARY_PATH)
      expect(blas).toMatch(/\(openmp\)$/);
  });

  const matmulCases: [number[], number[], boolean, boolean][] = [
    [[7, 5], [5, 3], false, false],
    [[5, 7], [5, 3], true, false],
    [[7, 5], [3, 5], false, true],
    [[5, 7], [3, 5], true, true],
    [[2, 3, 6, 4], [3, 4, 5], false, false], // batch broadcast: [2,3] with [3]
    [[1, 6, 4], [4, 5, 4], false, true], // batch broadcast of the left side
    [[4, 6, 4], [1, 4, 5], false, false], // shared right side: folded into one GEMM
    [[2, 4, 6], [2, 4, 5], true, false],
    [[33, 17], [17, 65], false, false],
    // large enough for OpenBLAS to split it over its threads (odd sizes: edge tiles on every side)
    [[257, 129], [129, 301], false, false],
    [[129, 257], [301, 129], true, true],
  ];
  it.each(matmulCases)('matMul %j x %j (transposeA %s, transposeB %s) and its gradients', async (sa, sb, ta, tb) => {
    const r = await onBoth(() => {
      const a = rand(sa, 1);
      const b = rand(sb, 2);
      const y = tf.matMul(a, b, ta, tb);
      // tfjs's BatchMatMul gradient does not reduce broadcast batch dims (on any backend): forward only there.
      if (sa.slice(0, -2).join() !== sb.slice(0, -2).join()) return [y];
      const w = rand(y.shape, 3);
      const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, z, ta, tb), w)))([a, b]);
      return [y, ga, gb];
    });
    expectClose(r);
  });

  const binaryOps = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'squaredDifference'] as const;
  const shapes: [number[], number[]][] = [
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    [[2, 3, 4], [4]],
    [
      [2, 1, 4],
      [3, 1],
    ],
    [[5], []],
    [[], [3, 2]],
    [
      [8, 1, 2, 6],
      [8, 5, 1, 6],
    ],
  ];
  for (const op of binaryOps) {
    it.each(shapes)(`${op} %j with %j and its gradients`, async (sa, sb) => {
      const r = await onBoth(() => {
        const a = rand(sa, 4);
        // Keep divisors away from 0 so that the comparison is well conditioned.
        const b = op === 'div' ? tf.add(tf.abs(rand(sb, 5)), 0.5) : rand(sb, 5);
        const f = (x: tf.Tensor, z: tf.Tensor) => tf[op](x, z);
        const y = f(a, b);
        // tfjs's gradients of these three do not reduce broadcast dims (on any backend): forward only there.
        if (['maximum', 'minimum', 'squaredDifference'].includes(op) && sa.join() !== sb.join()) return [y];
        const w = rand(y.shape, 6);
        return [y, ...tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(f(x, z), w)))([a, b])];
      });
      expectClose(r);
    });
  }

  const unaryOps = [
    'neg',
    'exp',
    'log',
    'sqrt',
    'rsqrt',
    'square',
    'sigmoid',
    'tanh',
    'relu',
    'reciprocal',
    'abs',
    'cos',
    'sin',
  ] as const;
  it.each(unaryOps)('%s and its gradient', async (op) => {
    const positive = ['log', 'sqrt', 'rsqrt', 'reciprocal'].includes(op);
    const r = await onBoth(() => {
      const x = positive ? tf.add(tf.abs(rand([3, 50, 7], 7)), 0.25) : tf.mul(rand([3, 50, 7], 7), 3);
      const f = (z: tf.Tensor) => tf[op](z);
      const w = rand([3, 50, 7], 8);
      return [f(x), tf.grad((z: tf.Tensor) => tf.sum(tf.mul(f(z), w)))(x)];
    });
    expectClose(r);
  });

  const reductions = ['sum', 'max', 'min', 'mean'] as const;
  const axes: (number | number[])[] = [-1, 0, 1, [0, 2], [1, 2]];
  for (const op of reductions) {
    it.each(axes.map((a) => [a]))(`${op} over axis %j (keepDims both ways) and its gradient`, async (axis) => {
      const r = await onBoth(() => {
        const x = rand([4, 5, 6], 9);
        const f = (z: tf.Tensor, keep: boolean) => tf[op](z, axis, keep);
        const y = f(x, true);
        const w = rand(y.shape, 10);
        return [y, f(x, false), tf.grad((z: tf.Tensor) => tf.sum(tf.mul(f(z, true), w)))(x)];
      });
      expectClose(r);
    });
  }

  it('softmax and logSumExp over the last axis and their gradients', async () => {
    const r = await onBoth(() => {
      const x = tf.mul(rand([2, 3, 17], 11), 5);
      const w = rand([2, 3, 17], 12);
      return [
        tf.softmax(x),
        tf.grad((z: tf.Tensor) => tf.sum(tf.mul(tf.softmax(z), w)))(x),
        tf.logSumExp(x, -1),
        tf.grad((z: tf.Tensor) => tf.sum(tf.logSumExp(z, -1)))(x),
      ];
    });
    expectClose(r);
  });

  it('transpose, slice, split and concat and their gradients', async () => {
    const r = await onBoth(() => {
      const x = rand([2, 3, 4, 5], 13);
      const w = rand([4, 2, 5, 3], 14);
      const t = (z: tf.Tensor) => tf.transpose(z, [2, 0, 3, 1]);
      const s = (z: tf.Tensor) => tf.slice(z, [1, 0, 1, 2], [1, 3, 2, 3]);
      const sp = (z: tf.Tensor) => tf.concat(tf.split(z, [2, 3], -1).reverse(), -1);
      return [
        t(x),
        tf.grad((z: tf.Tensor) => tf.sum(tf.mul(t(z), w)))(x),
        s(x),
        tf.grad((z: tf.Tensor) => tf.sum(tf.mul(s(z), rand([1, 3, 2, 3], 15))))(x),
        sp(x),
        tf.grad((z: tf.Tensor) => tf.sum(tf.mul(sp(z), x)))(x),
      ];
    });
    expectClose(r);
  });

  it('stack, unstack, pad and concat on every axis and their gradients', async () => {
    const r = await onBoth(() => {
      const a = rand([3, 4, 2], 22);
      const b = rand([3, 4, 2], 23);
      const out: tf.Tensor[] = [];
      for (const axis of [0, 1, 2, 3]) {
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.stack([x, y, x], axis);
        out.push(
          f(a, b),
          ...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), rand(f(a, b).shape, 24))))([a, b]),
        );
      }
      for (const axis of [0, 1, 2]) {
        out.push(
          tf.concat([a, tf.slice(b, [0, 0, 0], [axis === 0 ? 1 : 3, axis === 1 ? 1 : 4, axis === 2 ? 1 : 2]), a], axis),
        );
        const parts = tf.unstack(a, axis);
        out.push(...parts, tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.unstack(x, axis)[1], parts[0])))(a));
      }
      const p = (x: tf.Tensor) =>
        tf.pad(
          x,
          [
            [1, 0],
            [0, 2],
            [3, 1],
          ],
          0.5,
        );
      out.push(p(a), tf.grad((x: tf.Tensor) => tf.sum(tf.mul(p(x), rand([4, 6, 6], 25))))(a));
      return out;
    });
    expectClose(r);
  });

  it('gather (an embedding lookup, repeated ids) and its gradient through UnsortedSegmentSum', async () => {
    const r = await onBoth(() => {
      const table = rand([11, 6], 16);
      const ids = tf.tensor2d([3, 0, 3, 10, 7, 3], [2, 3], 'int32');
      const w = rand([2, 3, 6], 17);
      const onAxis1 = tf.gather(rand([2, 5, 3], 18), tf.tensor1d([4, 0, 4], 'int32'), 1);
      return [tf.gather(table, ids), tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), w)))(table), onAxis1];
    });
    expectClose(r);
  });

  it('comparisons (with broadcasting and ties) give the cpu booleans', async () => {
    const r = await onBoth(() => {
      const a = tf.round(tf.mul(rand([4, 1, 6], 26), 2));
      const b = tf.round(tf.mul(rand([3, 1], 27), 2));
      return [
        tf.equal(a, b),
        tf.notEqual(a, b),
        tf.less(a, b),
        tf.lessEqual(a, b),
        tf.greater(a, b),
        tf.greaterEqual(a, b),
      ];
    });
    expectClose(r, 0, 0);
  });

  it('addN, and int32 ops that fall back to the cpu kernels', async () => {
    const r = await onBoth(() => [
      tf.addN([rand([3, 4], 19), rand([3, 4], 20), rand([3, 4], 21)]),
      tf.add(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')),
      tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0),
    ]);
    expectClose(r, 0, 0);
  });

  it('reports out-of-range gather indices with the cpu backend error', async () => {
    await tf.setBackend('native');
    expect(() => tf.gather(tf.zeros([3, 2]), tf.tensor1d([5], 'int32'))).toThrow(/GatherV2/);
  });
});
