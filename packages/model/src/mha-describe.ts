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

/** The Hugging Face names of basic attention's parameters (relative to `self_attn.`). */
export const MHA_WEIGHTS = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'] as const;

/**
 * What `mha` tells the planner, the step-time model, serving and checkpoint import (pure arithmetic, no tensors):
 * Q, K, V projections [B,S,H] each, the shared RoPE attention core, the output projection; 8·H² FLOPs per token for
 * the four projections; the K/V cache of `ropeAttention`; a checkpoint whose layer has exactly q/k/v/o_proj [H, H].
 */
export const mhaDescriptors = {
  activation(shape: AttentionShape): ActivationTerms {
    const bsh = shape.batch * shape.seq * shape.hidden;
    return joinActivation(opActivation('Q, K, V projections', 3 * bsh), ropeAttentionActivation(shape), opActivation('output projection', bsh));
  },
  flops(shape: AttentionShape): AttentionFlops {
    return { projections: 8 * shape.batch * shape.seq * shape.hidden * shape.hidden, core: ropeAttentionFlops(shape) };
  },
  cache(spec: AttentionSpec): CacheEntrySpec[] {
    return ropeAttentionCache(spec);
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Record<string, never> | undefined {
    const params = [...weights.keys()].filter((n) => /\.(weight|bias)$/.test(n)).sort();
    if (params.join() !== [...MHA_WEIGHTS].sort().join()) return undefined;
    const h = spec.hiddenSize;
    return MHA_WEIGHTS.every((n) => weights.get(n)!.join() === `${h},${h}`) ? {} : undefined;
  },
};
