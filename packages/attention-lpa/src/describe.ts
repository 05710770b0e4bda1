import {
  joinActivation,
  opActivation,
  ropeAttentionActivation,
  ropeAttentionCache,
  ropeAttentionFlops,
  type ActivationTerms,
  type AttentionFlops,
  type AttentionShape,
  type AttentionDescription,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { LPA_DEFAULTS, lpaRank, parseLpaOptions, PROJECTIONS, type LpaOptions } from './options.js';

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
 * What `lpa` tells the planner, the step-time model, serving, checkpoint import and `yuan experiment ablation`
 * (pure arithmetic, no tensors). Activation: each of the Q, K, V and output projections is two matMuls, down
 * [B,S,r] then up [B,S,H]; the shared RoPE attention core between. FLOPs: 16·H·r per token for the four products.
 * Cache: K and V of `ropeAttention`. Checkpoints: `q_proj.down.weight` [r, H] (and the other factors) mark LPA.
 */
const lpaDescriptors = {
  activation(shape: AttentionShape, o: LpaOptions): ActivationTerms {
    const bs = shape.batch * shape.seq;
    const low = bs * lpaRank(shape.hidden, o);
    const bsh = bs * shape.hidden;
    return joinActivation(
      opActivation('Q, K, V projections: down [B,S,r] and up [B,S,H] each', 3 * (low + bsh)),
      ropeAttentionActivation(shape),
      opActivation('output projection: down [B,S,r], up [B,S,H]', low + bsh),
    );
  },
  flops(shape: AttentionShape, o: LpaOptions): AttentionFlops {
    return {
      projections: 16 * shape.batch * shape.seq * shape.hidden * lpaRank(shape.hidden, o),
      core: ropeAttentionFlops(shape),
    };
  },
  cache(spec: AttentionSpec): CacheEntrySpec[] {
    return ropeAttentionCache(spec);
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<LpaOptions> | undefined {
    const down = weights.get('q_proj.down.weight');
    if (
      !down ||
      down.length !== 2 ||
      !PROJECTIONS.every((p) => weights.has(`${p}.down.weight`) && weights.has(`${p}.up.weight`))
    )
      return undefined;
    const r = down[0];
    return r === lpaRank(spec.hiddenSize, {}) ? {} : { rank: r };
  },
  /** `rN`: rank N (the paper's ablation of the projection rank). */
  variant(suffix: string): Partial<LpaOptions> | undefined {
    const r = /^r(\d+)$/.exec(suffix);
    return r ? { rank: Number(r[1]) } : undefined;
  },
};

/**
 * The `lpa` plugin without its tensor code: name, options (rank hidden/4), parameters and descriptors. This module
 * loads no TensorFlow.js (`@yuan/attention-lpa/describe`); `lpaAttention` adds `create`.
 */
export const lpaDescription: AttentionDescription<LpaOptions> = {
  kind: 'attention',
  name: 'lpa',
  description: 'Low-dimensional Projected Attention: q/k/v/o as rank-r products (h→r→h), RoPE, causal softmax',
  defaults: LPA_DEFAULTS,
  validate: parseLpaOptions,
  parameters: lpaParameters,
  ...lpaDescriptors,
};
