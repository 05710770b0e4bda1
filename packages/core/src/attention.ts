import type { PluginBase } from './registry.js';

/** What an attention plugin is told about the layer it builds. */
export interface AttentionSpec {
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  layerIndex: number;
  numLayers: number;
  ropeBase: number;
  rmsNormEps: number;
  initStd: number;
}

/** How a parameter starts: normal(0, std), uniform(−bound, bound), zeros or ones. */
export type ParameterInit =
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'zeros' }
  | { kind: 'ones' };

/** A parameter a module owns: its name (relative to the module), shape (PyTorch layout: linear weights are [out, in]) and init. */
export interface ParameterSpec {
  name: string;
  shape: number[];
  init: ParameterInit;
  /**
   * Set when this parameter is stored fused but exchanged (Hugging Face layout) as equal row blocks under these names,
   * e.g. `qk_proj.weight` ⇄ [`q_proj.weight`, `k_proj.weight`].
   */
  parts?: string[];
}

/**
 * An attention variant. `parameters` lists what it owns (names relative to `self_attn.`), so shapes and counts are
 * known without allocating; `create` builds the layer over those parameters. `Layer` is the tensor package's type.
 */
export interface AttentionPlugin<Options = Record<string, unknown>, Layer = unknown, Tensor = unknown>
  extends PluginBase<'attention', Options> {
  parameters(spec: AttentionSpec, options: Options): ParameterSpec[];
  create(spec: AttentionSpec, options: Options, param: (name: string) => Tensor): Layer;
}

/** Number of scalars in a list of parameter specs. */
export function countParameters(specs: readonly ParameterSpec[]): number {
  return specs.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}
