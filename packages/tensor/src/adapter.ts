import type { AdapterPlugin } from '@yuan/core';
import type { LinearHook } from './linear-hooks.js';
import type { tf } from './tf.js';

/** A weight adapter built over its parameters: what it does to the base model's linear layers. */
export interface AdapterLayer {
  /** The hook of each adapted linear weight, keyed by the base model's parameter name (fused names, e.g. `qk_proj`). */
  readonly hooks: ReadonlyMap<string, LinearHook>;
  /**
   * The change to the adapted weight `name` ([out, in], fused name), so that W + delta computes what the hook computes
   * without dropout (merging the adapter into the base). The caller disposes it.
   */
  delta(name: string): tf.Tensor2D;
  /**
   * Training behaviour: with a seed, dropout is on, each mask drawn from the seed, the weight and how many times its
   * hook ran since this call (so a step is reproducible, resumed or not, and calling `training` again with the same
   * seed before recomputing a layer redraws the forward's masks); with undefined (the default) dropout is off.
   */
  training(seed: number | undefined): void;
}

/** An adapter plugin whose adapters run on TensorFlow.js tensors. */
export type TensorAdapterPlugin<Options = Record<string, unknown>> = AdapterPlugin<Options, AdapterLayer, tf.Tensor>;
