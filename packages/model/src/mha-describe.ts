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

/** The Hugging Face names of basic attention's parameters (relative to `self_attn.`). */
const MHA_WEIGHTS = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'] as const;

/**
 * What `mha` tells the planner, the step-time model, serving and checkpoint import (pure arithmetic, no tensors):
 * Q, K, V projections [B,S,H] each, the shared RoPE attention core, the output projection; 8·H² FLOPs per token for
 * the four projections; the K/V cache of `ropeAttention`; a checkpoint whose layer has exactly q/k/v/o_proj [H, H].
 */
const mhaDescriptors = {
  activation(shape: AttentionShape): ActivationTerms {
    const bsh = shape.batch * shape.seq * shape.hidden;
    return joinActivation(
      opActivation('Q, K, V projections', 3 * bsh),
      ropeAttentionActivation(shape),
      opActivation('output projection', bsh),
    );
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

/**
 * The `mha` plugin without its tensor code: no options, q/k/v/o_proj [H, H] (o_proj's init scaled by 1/√(2L)) and
 * the descriptors above. This module loads no TensorFlow.js (`@yuan/model/describe`); `mhaAttention` adds `create`.
 */
export const mhaDescription: AttentionDescription<Record<string, never>> = {
  kind: 'attention',
  name: 'mha',
  description: 'basic multi-head attention (LLaMA style): q/k/v/o projections, RoPE, causal softmax',
  defaults: {},
  validate(options) {
    const extra = Object.keys(options);
    if (extra.length) throw new Error(`attention mha takes no options (got ${extra.join(', ')})`);
    return {};
  },
  parameters(spec: AttentionSpec): ParameterSpec[] {
    const h = spec.hiddenSize;
    const init = { kind: 'normal', std: spec.initStd } as const;
    const out = { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) } as const;
    return [
      { name: 'q_proj.weight', shape: [h, h], init },
      { name: 'k_proj.weight', shape: [h, h], init },
      { name: 'v_proj.weight', shape: [h, h], init },
      { name: 'o_proj.weight', shape: [h, h], init: out },
    ];
  },
  ...mhaDescriptors,
};
