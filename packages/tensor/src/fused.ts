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
}

let fused: FusedOps | undefined;

/** Installs a backend's fused ops (called by backend selection, e.g. for `native`). */
export function useFusedOps(ops: FusedOps): void {
  fused = ops;
}

/** The fused ops to use for a float32 tensor on the active backend, if that backend supplied them. */
export function fusedFor(x: tf.Tensor): FusedOps | undefined {
  return fused && x.dtype === 'float32' && tf.getBackend() === fused.backend ? fused : undefined;
}
