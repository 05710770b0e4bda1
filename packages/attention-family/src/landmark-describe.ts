import {
  joinActivation,
  opActivation,
  type ActivationTerms,
  type AttentionDescription,
  type AttentionFlops,
  type AttentionShape,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { filterActivation, filterCache, filterFlops, filterParameters, NONE } from './filter-describe.js';
import { LANDMARK_DEFAULTS, parseLandmarkOptions, type LandmarkOptions } from './options.js';

function landmarkParameters(spec: AttentionSpec, o: LandmarkOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const init = { kind: 'normal', std: spec.initStd } as const;
  return [
    { name: 'q_proj.weight', shape: [h, h], init },
    { name: 'k_proj.weight', shape: [h, h], init },
    { name: 'v_proj.weight', shape: [h, h], init },
    {
      name: 'o_proj.weight',
      shape: [h, h],
      init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
    },
    ...(o.filter ? filterParameters(spec) : []),
  ];
}

/**
 * What `landmark` tells the planner, serving and the ablation (pure arithmetic). It runs op by op (the grouped
 * softmax is no plain causal softmax): about ten [B,A,S,S] tensors are kept (local and past scores with their
 * masks, exponentials, block sums, weights). FLOPs: 8·H² per token for the projections; the core is two QKᵀ (at
 * local and at past positions) and the weighted sum, 6·B·S²·H, plus the landmark scores 2·B·S·⌈S/block⌉·H. Cache:
 * K (rotated at block-local positions) and V, [B, A, T, d] each, as basic attention; landmark keys are recomputed
 * from it. Checkpoints: its tensors are `mha`'s (the landmark keys are block means, not weights), so it does not
 * `recognize` them: load with `--set attention.name=landmark`.
 */
const landmarkDescriptors = {
  activation(shape: AttentionShape, o: LandmarkOptions): ActivationTerms {
    const { batch: b, seq: s, hidden: h, heads: a } = shape;
    const bsh = b * s * h;
    return joinActivation(
      o.filter ? filterActivation(b, s, h, shape.fusedKernels) : NONE,
      opActivation('Q, K, V projections', 3 * bsh),
      opActivation('RoPE on Q (at local and past positions) and K', 12 * bsh),
      opActivation(
        'grouped softmax: local and past scores, masks, exponentials, block sums, weights [B,A,S,S]',
        10 * b * a * s * s,
      ),
      opActivation('landmark keys and scores', 2 * b * a * s * Math.ceil(s / o.block)),
      opActivation('weighted sum, heads merged, output projection', 3 * bsh),
    );
  },
  flops(shape: AttentionShape, o: LandmarkOptions): AttentionFlops {
    const { batch: b, seq: s, hidden: h } = shape;
    return {
      projections: 8 * b * s * h * h,
      core: 6 * b * s * s * h + 2 * b * s * Math.ceil(s / o.block) * h,
      ...(o.filter ? { other: filterFlops(b, s, h) } : {}),
    };
  },
  cache(spec: AttentionSpec, o: LandmarkOptions): CacheEntrySpec[] {
    const elements = spec.numHeads * spec.headDim;
    return [
      { name: 'k', timeAxis: 2, elements },
      { name: 'v', timeAxis: 2, elements },
      ...(o.filter ? filterCache(spec) : []),
    ];
  },
  /** `bN`: blocks of N tokens; `topN`: retrieve the N best past blocks; `lfa`: with LFA's filter. */
  variant(suffix: string): Partial<LandmarkOptions> | undefined {
    if (suffix === 'lfa') return { filter: true };
    const m = /^(b|top)(\d+)$/.exec(suffix);
    if (!m) return undefined;
    return m[1] === 'b' ? { block: Number(m[2]) } : { topK: Number(m[2]) };
  },
};

/** The `landmark` plugin without its tensor code (`@yuan/attention-family/describe`); `landmarkAttention` adds `create`. */
export const landmarkDescription: AttentionDescription<LandmarkOptions> = {
  kind: 'attention',
  name: 'landmark',
  description: 'Landmark attention: blocks represented by landmark keys, grouped softmax, block-local RoPE positions',
  defaults: LANDMARK_DEFAULTS,
  validate: parseLandmarkOptions,
  parameters: landmarkParameters,
  ...landmarkDescriptors,
};
