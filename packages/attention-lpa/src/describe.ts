import {
  joinActivation,
  opActivation,
  ropeAttentionActivation,
  ropeAttentionCache,
  ropeAttentionFlops,
  type ActivationTerms,
  type AttentionFlops,
  type AttentionShape,
  type AttentionSpec,
  type CacheEntrySpec,
} from '@yuan/core';
import { lpaRank, type LpaOptions } from './options.js';

const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

/**
 * What `lpa` tells the planner, the step-time model, serving, checkpoint import and `yuan experiment ablation`
 * (pure arithmetic, no tensors). Activation: each of the Q, K, V and output projections is two matMuls, down
 * [B,S,r] then up [B,S,H]; the shared RoPE attention core between. FLOPs: 16·H·r per token for the four products.
 * Cache: K and V of `ropeAttention`. Checkpoints: `q_proj.down.weight` [r, H] (and the other factors) mark LPA.
 */
export const lpaDescriptors = {
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
    return { projections: 16 * shape.batch * shape.seq * shape.hidden * lpaRank(shape.hidden, o), core: ropeAttentionFlops(shape) };
  },
  cache(spec: AttentionSpec): CacheEntrySpec[] {
    return ropeAttentionCache(spec);
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<LpaOptions> | undefined {
    const down = weights.get('q_proj.down.weight');
    if (!down || down.length !== 2 || !PROJECTIONS.every((p) => weights.has(`${p}.down.weight`) && weights.has(`${p}.up.weight`))) return undefined;
    const r = down[0];
    return r === lpaRank(spec.hiddenSize, {}) ? {} : { rank: r };
  },
  /** `rN`: rank N (the paper's ablation of the projection rank). */
  variant(suffix: string): Partial<LpaOptions> | undefined {
    const r = /^r(\d+)$/.exec(suffix);
    return r ? { rank: Number(r[1]) } : undefined;
  },
};
