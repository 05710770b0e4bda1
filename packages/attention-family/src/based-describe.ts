import {
  joinActivation,
  opActivation,
  ropeAttentionActivation,
  type ActivationTerms,
  type AttentionDescription,
  type AttentionFlops,
  type AttentionShape,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { filterActivation, filterCache, filterFlops, filterParameters, hasFilter, NONE } from './filter-describe.js';
import { BASED_DEFAULTS, parseBasedOptions, type BasedOptions } from './options.js';

/** Size of the Taylor feature map φ of a width-f vector: 1 + f + f². */
export function taylorSize(f: number): number {
  return 1 + f + f * f;
}

function basedParameters(spec: AttentionSpec, o: BasedOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const f = spec.numHeads * o.featureDim;
  const init = { kind: 'normal', std: spec.initStd } as const;
  return [
    { name: 'q_proj.weight', shape: [h, h], init },
    { name: 'k_proj.weight', shape: [h, h], init },
    { name: 'v_proj.weight', shape: [h, h], init },
    { name: 'feature_q_proj.weight', shape: [f, h], init },
    { name: 'feature_k_proj.weight', shape: [f, h], init },
    {
      name: 'o_proj.weight',
      shape: [h, h],
      init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
    },
    ...(o.filter ? filterParameters(spec) : []),
  ];
}

/**
 * What `based` tells the planner, serving, checkpoint import and the ablation (pure arithmetic). Training computes
 * both mixers over the whole sequence with [B,A,S,S] scores (the linear attention in its quadratic form
 * 1 + x + x²/2, the window attention masked to its band), so activation and core FLOPs grow with S² there; decoding
 * keeps a fixed state. Cache (all of fixed size, no time axis): the linear attention's Σφ(k)vᵀ (`lin_s`
 * [B,A,1+f+f²,d]) and Σφ(k) (`lin_z` [B,A,1+f+f²]), the window's last window − 1 keys and values (`win_k`, `win_v`
 * [B,A,window−1,d], after RoPE) and which of those slots hold a token (`win_bias` [B,1,1,window−1]).
 */
const basedDescriptors = {
  activation(shape: AttentionShape, o: BasedOptions): ActivationTerms {
    const { batch: b, seq: s, hidden: h, heads: a } = shape;
    const bsh = b * s * h;
    const scores = b * a * s * s;
    return joinActivation(
      o.filter ? filterActivation(b, s, h, shape.fusedKernels) : NONE,
      opActivation('Q, K, V projections', 3 * bsh),
      opActivation('feature Q, K projections [B,S,A·f] and transposes', 4 * b * s * a * o.featureDim),
      opActivation('linear attention scores x, x², 1 + x + x²/2, masked, row sums, normalised [B,A,S,S]', 6 * scores),
      {
        saved: [
          { name: 'window attention (op by op): scores, scaled, masked, softmax [B,A,S,S]', elements: 4 * scores },
        ],
        gradients: [{ name: 'd window attention scores [B,A,S,S]', elements: 4 * scores }],
      },
      ropeAttentionActivation({ ...shape, fusedAttention: true }),
      opActivation('both outputs [B,A,S,d], their sum, output projection', 4 * bsh),
    );
  },
  flops(shape: AttentionShape, o: BasedOptions): AttentionFlops {
    const { batch: b, seq: s, hidden: h, heads: a } = shape;
    return {
      projections: 2 * b * s * h * (4 * h + 2 * a * o.featureDim),
      core: 2 * b * s * s * a * o.featureDim + 2 * b * s * s * h + 4 * b * s * s * h,
      ...(o.filter ? { other: filterFlops(b, s, h) } : {}),
    };
  },
  cache(spec: AttentionSpec, o: BasedOptions): CacheEntrySpec[] {
    const a = spec.numHeads;
    const d = spec.headDim;
    const big = taylorSize(o.featureDim);
    const w = o.window - 1;
    return [
      { name: 'lin_s', elements: a * big * d },
      { name: 'lin_z', elements: a * big },
      { name: 'win_k', elements: a * w * d },
      { name: 'win_v', elements: a * w * d },
      { name: 'win_bias', elements: w },
      ...(o.filter ? filterCache(spec) : []),
    ];
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<BasedOptions> | undefined {
    const fq = weights.get('feature_q_proj.weight');
    if (!fq || !weights.has('q_proj.weight')) return undefined;
    const f = fq[0] / spec.numHeads;
    return {
      ...(f !== BASED_DEFAULTS.featureDim ? { featureDim: f } : {}),
      ...(hasFilter(weights) ? { filter: true } : {}),
    };
  },
  /** `wN`: window N; `fN`: feature dimension N; `lfa`: with LFA's filter. */
  variant(suffix: string): Partial<BasedOptions> | undefined {
    if (suffix === 'lfa') return { filter: true };
    const m = /^([wf])(\d+)$/.exec(suffix);
    if (!m) return undefined;
    return m[1] === 'w' ? { window: Number(m[2]) } : { featureDim: Number(m[2]) };
  },
};

/** The `based` plugin without its tensor code (`@yuan/attention-family/describe`); `basedAttention` adds `create`. */
export const basedDescription: AttentionDescription<BasedOptions> = {
  kind: 'attention',
  name: 'based',
  description: 'Based: Taylor linear attention (fixed-size state) plus sliding-window softmax attention',
  defaults: BASED_DEFAULTS,
  validate: parseBasedOptions,
  parameters: basedParameters,
  ...basedDescriptors,
};
