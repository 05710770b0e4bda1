import type { AttentionSpec, ParameterSpec } from '@yuan/core';
import { linear, ropeAttention, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { lpaDescriptors } from './describe.js';
import { LPA_DEFAULTS, lpaRank, parseLpaOptions, type LpaOptions } from './options.js';

const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

/**
 * Each projection W [h, h] is up·down with down [r, h] and up [h, r]. Both factors are normal with the same std s,
 * chosen so the product's entries have the dense init's std σ: r·s⁴ = σ², s = √(σ/√r).
 */
function lpaParameters(spec: AttentionSpec, o: LpaOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const r = lpaRank(h, o);
  return PROJECTIONS.flatMap((p) => {
    const sigma = p === 'o_proj' ? spec.initStd / Math.sqrt(2 * spec.numLayers) : spec.initStd;
    const init = { kind: 'normal', std: Math.sqrt(sigma / Math.sqrt(r)) } as const;
    return [
      { name: `${p}.down.weight`, shape: [r, h], init },
      { name: `${p}.up.weight`, shape: [h, r], init },
    ];
  });
}

/**
 * Low-dimensional Projected Attention (Lv et al. 2024): the Q, K, V and output projections of the attention layer
 * are low-rank products (h → r → h); RoPE and causal softmax attention are as in basic attention. The MLP of the
 * block stays full-rank (it is not part of this plugin).
 */
export const lpaAttention: TensorAttentionPlugin<LpaOptions> = {
  kind: 'attention',
  name: 'lpa',
  description: 'Low-dimensional Projected Attention: q/k/v/o as rank-r products (h→r→h), RoPE, causal softmax',
  defaults: LPA_DEFAULTS,
  validate: parseLpaOptions,
  parameters: lpaParameters,
  ...lpaDescriptors,
  create(spec, _o, param) {
    const project = (x: tf.Tensor, p: (typeof PROJECTIONS)[number]) => linear(linear(x, param(`${p}.down.weight`)), param(`${p}.up.weight`));
    const heads = (x: tf.Tensor) => {
      const [b, t] = x.shape;
      return tf.reshape(x, [b, t, spec.numHeads, spec.headDim]) as tf.Tensor4D;
    };
    return {
      forward(x, ctx) {
        const r = ropeAttention(heads(project(x, 'q_proj')), heads(project(x, 'k_proj')), heads(project(x, 'v_proj')), ctx);
        return { out: project(r.out, 'o_proj') as tf.Tensor3D, cache: r.cache };
      },
    };
  },
};
