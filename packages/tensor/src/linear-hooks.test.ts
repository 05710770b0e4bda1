import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { withLinearHooks } from './linear-hooks.js';
import { linear } from './nn.js';
import { tf } from './tf.js';

describe('linear hooks', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('replace linear(x, w) of the hooked weight inside withLinearHooks only, with the plain product as base; inner maps win', () => {
    const w = tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const other = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    const x = tf.tensor2d([[1, 1]]);
    const plus = (k: number) => (v: tf.Tensor, base: (v: tf.Tensor) => tf.Tensor) => tf.add(base(v), k);
    expect(linear(x, w).arraySync()).toEqual([[3, 7, 11]]);
    withLinearHooks(new Map([[w, plus(10)]]), () => {
      expect(linear(x, w).arraySync()).toEqual([[13, 17, 21]]);
      expect(linear(x, other).arraySync()).toEqual([[1, 1]]);
      withLinearHooks(new Map([[other, plus(1)]]), () => {
        expect(linear(x, w).arraySync()).toEqual([[13, 17, 21]]);
        expect(linear(x, other).arraySync()).toEqual([[2, 2]]);
      });
      withLinearHooks(new Map([[w, plus(100)]]), () => expect(linear(x, w).arraySync()).toEqual([[103, 107, 111]]));
    });
    expect(() =>
      withLinearHooks(
        new Map([
          [
            w,
            () => {
              throw new Error('boom');
            },
          ],
        ]),
        () => linear(x, w),
      ),
    ).toThrow('boom');
    expect(linear(x, w).arraySync()).toEqual([[3, 7, 11]]);
    tf.dispose([w, other, x]);
  });
});
