import { describe, expect, it } from 'vitest';
import { applyRope, causalAttention, causalConv1d, linear, observeLinear, ropeTables } from './nn.js';
import { Rng } from '@yuan/core';
import { tf } from './tf.js';

function rand(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

describe('nn blocks', () => {
  it('RoPE rotates halves by position·base^(−2i/d)', () => {
    const x = rand([1, 3, 1, 4], 1);
    const { cos, sin } = ropeTables(tf.tensor2d([[0, 1, 5]], [1, 3], 'int32'), 4, 10000);
    const y = applyRope(x as tf.Tensor4D, cos, sin).arraySync()[0];
    const xs = (x as tf.Tensor4D).arraySync()[0];
    [0, 1, 5].forEach((p, t) => {
      for (let i = 0; i < 2; i++) {
        const th = p / Math.pow(10000, (2 * i) / 4);
        const [a, b] = [xs[t][0][i], xs[t][0][i + 2]];
        expect(y[t][0][i]).toBeCloseTo(a * Math.cos(th) - b * Math.sin(th), 5);
        expect(y[t][0][i + 2]).toBeCloseTo(b * Math.cos(th) + a * Math.sin(th), 5);
      }
    });
  });

  it("observeLinear sees each linear's own weight and its input rows, and is removed afterwards (also after a throw)", () => {
    const w = rand([3, 4], 5);
    const x = rand([2, 5, 4], 6);
    const seen: { weight: tf.Tensor; shape: number[]; values: number[] }[] = [];
    const y = observeLinear(
      (weight, input) => seen.push({ weight, shape: input.shape, values: [...input.dataSync()] }),
      () => linear(x, w),
    );
    expect(y.shape).toEqual([2, 5, 3]);
    expect(seen).toHaveLength(1);
    expect(seen[0].weight).toBe(w);
    expect(seen[0].shape).toEqual([10, 4]);
    expect(seen[0].values).toEqual([...x.dataSync()]);
    linear(x, w).dispose();
    expect(seen).toHaveLength(1);
    expect(() =>
      observeLinear(
        () => seen.push(seen[0]),
        () => {
          throw new Error('boom');
        },
      ),
    ).toThrow('boom');
    linear(x, w).dispose();
    expect(seen).toHaveLength(1);
    tf.dispose([w, x, y]);
  });

  it('causal attention: the last rows of a full pass equal a pass over those queries only', () => {
    const q = rand([2, 2, 5, 4], 2) as tf.Tensor4D;
    const k = rand([2, 2, 5, 4], 3) as tf.Tensor4D;
    const v = rand([2, 2, 5, 4], 4) as tf.Tensor4D;
    const full = causalAttention(q, k, v);
    const tail = causalAttention(q.slice([0, 0, 3, 0], [2, 2, 2, 4]), k, v);
    expect(tf.max(tf.abs(tf.sub(full.slice([0, 0, 3, 0], [2, 2, 2, 4]), tail))).dataSync()[0]).toBeLessThan(1e-6);
    // the first query sees only the first key
    expect(
      tf.max(tf.abs(tf.sub(full.slice([0, 0, 0, 0], [2, 2, 1, 4]), v.slice([0, 0, 0, 0], [2, 2, 1, 4])))).dataSync()[0],
    ).toBeLessThan(1e-6);
  });

  it('causal conv with history equals the full-sequence conv (incremental decoding)', () => {
    const x = rand([2, 6, 3], 5) as tf.Tensor3D;
    const w = rand([4, 3, 3, 1], 6);
    const b = rand([4], 7);
    const full = causalConv1d(x, w, b);
    const step = causalConv1d(x.slice([0, 5, 0], [2, 1, 3]), w, b, x.slice([0, 3, 0], [2, 2, 3]));
    expect(tf.max(tf.abs(tf.sub(full.slice([0, 5, 0], [2, 1, 4]), step))).dataSync()[0]).toBeLessThan(1e-5);
    // y_0 = W_2·x_0 + b (zero history)
    const w2 = w.slice([0, 0, 2, 0], [4, 3, 1, 1]).reshape([4, 3]);
    const y0 = tf.add(tf.matMul(x.slice([0, 0, 0], [1, 1, 3]).reshape([1, 3]), w2, false, true), b);
    expect(tf.max(tf.abs(tf.sub(full.slice([0, 0, 0], [1, 1, 4]).reshape([1, 4]), y0))).dataSync()[0]).toBeLessThan(
      1e-5,
    );
  });
});
