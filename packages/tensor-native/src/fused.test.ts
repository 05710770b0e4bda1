import { describe, expect, it } from 'vitest';
import {
  adamwUpdate as fusedAdamw,
  rmsNorm as fusedRmsNorm,
  ropeHeads as fusedRopeHeads,
  swigluActivation as fusedSwiglu,
} from './index.js';
import { expectClose, native, onBoth, rand } from './test-util.js';
import { tf } from './tf.js';

// The fused ops on native against the same math composed of tfjs ops on the cpu backend (the references below are
// the formulas @yuan/tensor composes; tensor-native itself only runs the native kernels).
const onNative = () => tf.getBackend() === 'native';
const rmsNorm = (x: tf.Tensor, w: tf.Tensor, eps: number) =>
  onNative()
    ? fusedRmsNorm(x, w, eps)
    : tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w));
const swigluActivation = (u: tf.Tensor) =>
  onNative()
    ? fusedSwiglu(u)
    : tf.tidy(() => {
        const [a, g] = tf.split(u, 2, -1);
        return tf.mul(tf.mul(a, tf.sigmoid(a)), g);
      });
// rotate-half RoPE then the move to [B, H, T, d], as @yuan/tensor's applyRope and ropeAttention compose it
const ropeHeads = (x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D) =>
  onNative()
    ? fusedRopeHeads(x, cos, sin)
    : tf.tidy(() => {
        const [x1, x2] = tf.split(x, 2, -1);
        const rotated = tf.concat([tf.neg(x2), x1], -1);
        return tf.transpose(tf.add(tf.mul(x, cos), tf.mul(rotated, sin)), [0, 2, 1, 3]) as tf.Tensor4D;
      });
type Hyper = Parameters<typeof fusedAdamw>[4];
const adamwUpdate = (
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  h: Hyper,
): [tf.Tensor, tf.Tensor, tf.Tensor] =>
  onNative()
    ? fusedAdamw(p, g, m, v, h)
    : tf.tidy(() => {
        const m2 = tf.add(tf.mul(m, h.beta1), tf.mul(g, 1 - h.beta1));
        const v2 = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
        const update = tf.div(
          tf.div(m2, 1 - h.beta1 ** h.step),
          tf.add(tf.sqrt(tf.div(v2, 1 - h.beta2 ** h.step)), h.eps),
        );
        const decayed = h.weightDecay > 0 ? tf.add(update, tf.mul(p, h.weightDecay)) : update;
        return [tf.sub(p, tf.mul(decayed, h.lr)), m2, v2] as [tf.Tensor, tf.Tensor, tf.Tensor];
      });
describe.skipIf(!native.info)('fused ops', () => {
  it.each([[[2, 5, 7]], [[33, 128]], [[1, 1, 4]]])(
    'rmsNorm %j forward and gradients match the composite on cpu',
    async (shape) => {
      const r = await onBoth(() => {
        const d = shape[shape.length - 1];
        const x = tf.mul(rand(shape, 30), 2);
        const w = tf.add(rand([d], 31), 1);
        const dy = rand(shape, 32);
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b, 1e-6), dy));
        return [rmsNorm(x, w, 1e-6), ...tf.grads(f)([x, w])];
      });
      expectClose(r);
    },
  );

  it.each([[[2, 3, 10]], [[64, 1024]]])(
    'swigluActivation %j forward and gradient match the composite on cpu',
    async (shape) => {
      const r = await onBoth(() => {
        const u = tf.mul(rand(shape, 35), 4);
        const dy = rand([...shape.slice(0, -1), shape[shape.length - 1] / 2], 36);
        return [swigluActivation(u), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(swigluActivation(a), dy)))(u)];
      });
      expectClose(r);
    },
  );

  // [B, T, H, d] and the batch rows of the tables (1: shared by every row); odd T and H, d = 2 (one pair) and 66
  it.each([
    [[2, 5, 3, 8], 2],
    [[3, 7, 1, 2], 1],
    [[1, 129, 5, 66], 1],
    [[2, 4, 4, 32], 2],
  ])(
    'ropeHeads %j (tables for %i batch rows) forward and gradients of x, cos, sin match the composite on cpu',
    async (shape, cb) => {
      const r = await onBoth(() => {
        const [b, t, h, d] = shape;
        const x = rand(shape, 40) as tf.Tensor4D;
        // not a real rotary table: independent values, so that a swapped cos/sin or half shows
        const cos = rand([cb, t, 1, d], 41) as tf.Tensor4D;
        const sin = rand([cb, t, 1, d], 42) as tf.Tensor4D;
        const dy = rand([b, h, t, d], 43);
        const f = (a: tf.Tensor, c: tf.Tensor, s: tf.Tensor) =>
          tf.sum(tf.mul(ropeHeads(a as tf.Tensor4D, c as tf.Tensor4D, s as tf.Tensor4D), dy));
        return [ropeHeads(x, cos, sin), ...tf.grads(f)([x, cos, sin])];
      });
      expectClose(r);
    },
  );

  it('ropeHeads runs as one kernel forward and one backward on native, and names wrong table shapes', async () => {
    await tf.setBackend('native');
    const x = rand([2, 3, 2, 4], 44) as tf.Tensor4D;
    const cos = rand([2, 3, 1, 4], 45) as tf.Tensor4D;
    const profile = await tf.profile(() =>
      tf.grad((a: tf.Tensor) => tf.sum(fusedRopeHeads(a as tf.Tensor4D, cos, cos)))(x),
    );
    const names = profile.kernels.map((k) => k.name);
    expect(names.filter((n) => n.startsWith('YuanRope'))).toEqual(['YuanRopeHeads', 'YuanRopeHeadsGrad']);
    expect(names).not.toContain('Transpose');
    const wrong = rand([2, 3, 1, 2], 46) as tf.Tensor4D;
    expect(() => fusedRopeHeads(x, wrong, wrong)).toThrow(
      /YuanRopeHeads: x \[B, T, H, d\] with d even and cos, sin \[1 or B, T, 1, d\]/,
    );
    tf.dispose([x, cos, wrong]);
  });

  it.each([0, 0.1])('adamwUpdate (weight decay %s) over 3 steps matches the composite on cpu', async (weightDecay) => {
    const r = await onBoth(() => {
      let [p, m, v] = [rand([5, 7], 37), tf.zerosLike(rand([5, 7], 0)), tf.zerosLike(rand([5, 7], 0))];
      for (let step = 1; step <= 3; step++) {
        const g = tf.mul(rand([5, 7], 38 + step), step === 2 ? 1e-4 : 1);
        [p, m, v] = adamwUpdate(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay, step });
      }
      return [p, m, v];
    });
    expectClose(r, 1e-5, 1e-7);
  });

  it('rmsNorm runs as one kernel forward and one backward on native', async () => {
    await tf.setBackend('native');
    const x = rand([4, 8], 33);
    const w = rand([8], 34);
    const names: string[] = [];
    const profile = await tf.profile(() =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(rmsNorm(a, b, 1e-5)))([x, w]),
    );
    for (const k of profile.kernels) names.push(k.name);
    expect(names.filter((n) => n.startsWith('YuanRmsNorm'))).toEqual(['YuanRmsNorm', 'YuanRmsNormGrad']);
    expect(names).not.toContain('Rsqrt');
    tf.dispose([x, w]);
  });
});
