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
 * v (the caller assigns them): one native kernel instead of 12 tfjs ops. The composite lives once, in @yuan/tensor's
 * `adamwStep`, which calls this only while the native backend is active. Throws on another backend or dtype.
 */
export function adamwUpdate(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  h: AdamWStep,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const c1 = 1 - h.beta1 ** h.step;
  const c2 = 1 - h.beta2 ** h.step;
  if (tf.getBackend() !== 'native' || ![p, g, m, v].every((t) => t.dtype === 'float32'))
    throw new Error(
      'adamwUpdate needs the native backend with float32 tensors (@yuan/tensor falls back to its own ops elsewhere)',
    );
  const attrs = { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, c1, c2 };
  return tf.engine().runKernel(KERNEL, { p, g, m, v }, attrs) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
