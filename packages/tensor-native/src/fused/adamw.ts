import type { NativeAddon } from '../addon.js';
import type { NativeKernel } from '../kernels/types.js';
import { f32 } from '../kernels/util.js';
import { tf } from '../tf.js';

const KERNEL = 'YuanAdamW';

/** Hyper-parameters of one AdamW update; `step` is the 1-based update count used for the bias corrections. */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

const kernel: NativeKernel = ({ inputs, backend, attrs }, addon: NativeAddon) => {
  const { p, g, m, v } = inputs;
  const [pv, gv, mv, vv] = [p, g, m, v].map((t) => f32(backend, t));
  if (!pv || !gv || !mv || !vv) throw new Error(`${KERNEL}: parameter, gradient and moments must be float32`);
  const [po, mo, vo] = [0, 1, 2].map(() => backend.alloc(pv.length));
  const a = attrs as unknown as Record<string, number>;
  addon.adamw(pv, gv, mv, vv, po, mo, vo, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.c1, a.c2);
  return [po, mo, vo].map((values) => backend.makeTensorInfo(p.shape, 'float32', values));
};

/** The fused AdamW kernel by name (registered for the native backend only). */
export const adamwKernels: Record<string, NativeKernel> = { [KERNEL]: kernel };

/**
 * One AdamW step with decoupled weight decay, as @yuan/model's trainer computes it: m' = β1·m + (1−β1)·g,
 * v' = β2·v + (1−β2)·g², p' = p − lr·((m'/(1−β1^step)) / (√(v'/(1−β2^step)) + eps) + wd·p). Returns the new p, m and
 * v (the caller assigns them): one native kernel on the native backend instead of 12 tfjs ops, the same ops elsewhere.
 */
export function adamwUpdate(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, h: AdamWStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const c1 = 1 - h.beta1 ** h.step;
  const c2 = 1 - h.beta2 ** h.step;
  if (tf.getBackend() === 'native' && [p, g, m, v].every((t) => t.dtype === 'float32')) {
    const attrs = { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, c1, c2 };
    return tf.engine().runKernel(KERNEL, { p, g, m, v }, attrs) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  return tf.tidy(() => {
    const m2 = tf.add(tf.mul(m, h.beta1), tf.mul(g, 1 - h.beta1));
    const v2 = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
    const update = tf.div(tf.div(m2, c1), tf.add(tf.sqrt(tf.div(v2, c2)), h.eps));
    const decayed = h.weightDecay > 0 ? tf.add(update, tf.mul(p, h.weightDecay)) : update;
    return [tf.sub(p, tf.mul(decayed, h.lr)), m2, v2] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}
