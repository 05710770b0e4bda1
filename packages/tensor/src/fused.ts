import { tf } from './tf.js';

/** Hyper-parameters of one AdamW update; `step` is the 1-based update count used for the bias corrections. */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** Single-kernel versions of ops (with their own gradients) that a backend supplies, used while it is active. */
export interface FusedOps {
  backend: string;
  rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor;
  swigluActivation(u: tf.Tensor): tf.Tensor;
  adamwUpdate(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, h: AdamWHyper): [tf.Tensor, tf.Tensor, tf.Tensor];
  /** Causal attention as one kernel forward and one backward (q [B, A, Sq, d], k and v [B, A, Sk, d]); optional. */
  causalAttention?(
    q: tf.Tensor4D,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    options: { scale: number; keyBias?: tf.Tensor4D },
  ): tf.Tensor4D;
  /**
   * Rotary embeddings of x [B, T, H, d] with tables cos, sin [1 or B, T, 1, d], returned head-major [B, H, T, d]
   * (`applyRope` then a [0, 2, 1, 3] transpose) as one kernel forward and one backward; optional.
   */
  ropeHeads?(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D;
}

let fused: FusedOps | undefined;

/** Installs a backend's fused ops (called by backend selection, e.g. for `native`). */
export function useFusedOps(ops: FusedOps): void {
  fused = ops;
}

let attentionFused = process.env.YUAN_FUSED_ATTENTION !== '0';

/**
 * Whether `causalAttention` uses the backend's fused attention kernel where there is one (default true, or false when
 * the environment variable `YUAN_FUSED_ATTENTION` is `0`); false runs the op-by-op attention on every backend, for
 * comparisons. Returns the previous setting.
 */
export function setFusedAttention(enabled: boolean): boolean {
  const previous = attentionFused;
  attentionFused = enabled;
  return previous;
}

/** The fused attention op for float32 q on the active backend, unless turned off by `setFusedAttention(false)`. */
export function fusedAttentionFor(q: tf.Tensor): FusedOps['causalAttention'] {
  return attentionFused ? fusedFor(q)?.causalAttention : undefined;
}

/** The fused ops to use for a float32 tensor on the active backend, if that backend supplied them. */
export function fusedFor(x: tf.Tensor): FusedOps | undefined {
  return fused && x.dtype === 'float32' && tf.getBackend() === fused.backend ? fused : undefined;
}

let attentionCoreRecompute = false;

/**
 * Sets whether the op-by-op attention core keeps only Q, K, V and recomputes its scores in the backward (selective
 * recompute, set by `recordTape` while it records); returns the previous setting.
 */
export function setAttentionCoreRecompute(enabled: boolean): boolean {
  const previous = attentionCoreRecompute;
  attentionCoreRecompute = enabled;
  return previous;
}

/** Whether the op-by-op attention core recomputes its scores in the backward now (`setAttentionCoreRecompute`). */
export function attentionCoreRecomputes(): boolean {
  return attentionCoreRecompute;
}
