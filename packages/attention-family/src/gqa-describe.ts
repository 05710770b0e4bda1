import {
  joinActivation,
  opActivation,
  ropeAttentionActivation,
  ropeAttentionFlops,
  type ActivationTerms,
  type AttentionDescription,
  type AttentionFlops,
  type AttentionShape,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { filterActivation, filterCache, filterFlops, filterParameters, hasFilter, NONE } from './filter-describe.js';
import { GQA_DEFAULTS, gqaKvHeads, parseGqaOptions, type GqaOptions } from './options.js';

function gqaParameters(spec: AttentionSpec, o: GqaOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const kv = gqaKvHeads(spec.numHeads, o) * spec.headDim;
  const init = { kind: 'normal', std: spec.initStd } as const;
  return [
    { name: 'q_proj.weight', shape: [h, h], init },
    { name: 'k_proj.weight', shape: [kv, h], init },
    { name: 'v_proj.weight', shape: [kv, h], init },
    {
      name: 'o_proj.weight',
      shape: [h, h],
      init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
    },
    ...(o.filter ? filterParameters(spec) : []),
  ];
}

/**
 * What `gqa` tells the planner, serving, checkpoint import and the ablation (pure arithmetic). Activation: the filter
 * (if on), Q [B,S,H], K and V [B,S,g·d], K and V repeated to every query head [B,S,H] each (a gather, when g < A),
 * the shared RoPE attention core and the output projection. FLOPs: 2·H·(2H + 2·g·d) per token. Cache: K (after
 * RoPE) and V of the g key/value heads, [B, g, T, d] each: 2·g·d elements per token (A/g times fewer than MHA's).
 * Checkpoints: LLaMA's layout, q/k/v/o_proj with k_proj and v_proj [g·d, H], g < A (A = g is `mha`'s).
 */
const gqaDescriptors = {
  activation(shape: AttentionShape, o: GqaOptions): ActivationTerms {
    const bs = shape.batch * shape.seq;
    const bsh = bs * shape.hidden;
    const g = gqaKvHeads(shape.heads, o);
    return joinActivation(
      o.filter ? filterActivation(shape.batch, shape.seq, shape.hidden, shape.fusedKernels) : NONE,
      opActivation('Q projection', bsh),
      opActivation('K, V projections [B,S,g·d]', 2 * bs * g * shape.headDim),
      g < shape.heads ? opActivation('K, V repeated for every query head', 2 * bsh) : NONE,
      ropeAttentionActivation(shape),
      opActivation('output projection', bsh),
    );
  },
  flops(shape: AttentionShape, o: GqaOptions): AttentionFlops {
    const bs = shape.batch * shape.seq;
    const h = shape.hidden;
    const kv = gqaKvHeads(shape.heads, o) * shape.headDim;
    return {
      projections: 2 * bs * h * (2 * h + 2 * kv),
      core: ropeAttentionFlops(shape),
      ...(o.filter ? { other: filterFlops(shape.batch, shape.seq, h) } : {}),
    };
  },
  cache(spec: AttentionSpec, o: GqaOptions): CacheEntrySpec[] {
    const elements = gqaKvHeads(spec.numHeads, o) * spec.headDim;
    return [
      { name: 'k', timeAxis: 2, elements },
      { name: 'v', timeAxis: 2, elements },
      ...(o.filter ? filterCache(spec) : []),
    ];
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<GqaOptions> | undefined {
    const q = weights.get('q_proj.weight');
    const k = weights.get('k_proj.weight');
    const v = weights.get('v_proj.weight');
    if (!q || !k || !v || !weights.has('o_proj.weight') || k.join() !== v.join()) return undefined;
    const g = k[0] / spec.headDim;
    if (q[0] !== spec.hiddenSize || !Number.isInteger(g) || g >= spec.numHeads || spec.numHeads % g !== 0)
      return undefined;
    return { kvHeads: g, ...(hasFilter(weights) ? { filter: true } : {}) };
  },
  /** `gN`: N key/value heads; `mqa`: one; `lfa`: the default heads with LFA's filter. */
  variant(suffix: string): Partial<GqaOptions> | undefined {
    if (suffix === 'mqa') return { kvHeads: 1 };
    if (suffix === 'lfa') return { filter: true };
    const g = /^g(\d+)$/.exec(suffix);
    return g ? { kvHeads: Number(g[1]) } : undefined;
  },
};

/** The `gqa` plugin without its tensor code (`@yuan/attention-family/describe`); `gqaAttention` adds `create`. */
export const gqaDescription: AttentionDescription<GqaOptions> = {
  kind: 'attention',
  name: 'gqa',
  description: 'grouped-query attention: query heads share kvHeads key/value heads (MHA and MQA at the ends), RoPE',
  defaults: GQA_DEFAULTS,
  validate: parseGqaOptions,
  parameters: gqaParameters,
  ...gqaDescriptors,
};
