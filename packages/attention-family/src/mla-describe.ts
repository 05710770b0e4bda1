import {
  attentionCoreActivation,
  joinActivation,
  opActivation,
  rmsNormActivation,
  YuanError,
  type ActivationTerms,
  type AttentionDescription,
  type AttentionFlops,
  type AttentionShape,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { filterActivation, filterCache, filterFlops, filterParameters, hasFilter, NONE } from './filter-describe.js';
import {
  GQA_DEFAULTS,
  gqaKvHeads,
  MLA_DEFAULTS,
  mlaSizes,
  parseGqaOptions,
  parseMlaOptions,
  type MlaOptions,
} from './options.js';

function mlaParameters(spec: AttentionSpec, o: MlaOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const a = spec.numHeads;
  const s = mlaSizes(spec.headDim, a, o);
  const init = { kind: 'normal', std: spec.initStd } as const;
  const ones = { kind: 'ones' } as const;
  const q: ParameterSpec[] =
    s.qRank > 0
      ? [
          { name: 'q_a_proj.weight', shape: [s.qRank, h], init },
          ...(o.latentNorm ? [{ name: 'q_a_layernorm.weight', shape: [s.qRank], init: ones }] : []),
          { name: 'q_b_proj.weight', shape: [a * (s.nope + s.rope), s.qRank], init },
        ]
      : [{ name: 'q_proj.weight', shape: [a * (s.nope + s.rope), h], init }];
  return [
    ...q,
    { name: 'kv_a_proj_with_mqa.weight', shape: [s.kvRank + s.ropeHeads * s.rope, h], init },
    ...(o.latentNorm ? [{ name: 'kv_a_layernorm.weight', shape: [s.kvRank], init: ones }] : []),
    { name: 'kv_b_proj.weight', shape: [a * (s.nope + s.v), s.kvRank], init },
    {
      name: 'o_proj.weight',
      shape: [h, a * s.v],
      init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
    },
    ...(o.filter ? filterParameters(spec) : []),
  ];
}

/** Multiply-adds per token of the projections (one per weight of every matrix). */
function projectionWeights(h: number, a: number, d: number, o: MlaOptions): number {
  const s = mlaSizes(d, a, o);
  const q = s.qRank > 0 ? s.qRank * h + a * (s.nope + s.rope) * s.qRank : a * (s.nope + s.rope) * h;
  return q + (s.kvRank + s.ropeHeads * s.rope) * h + a * (s.nope + s.v) * s.kvRank + h * a * s.v;
}

/**
 * What `mla` tells the planner, serving, checkpoint import and the ablation (pure arithmetic). Cache: the latent
 * c_KV (`c_kv` [B, T, kvRank], after its RMSNorm) and the RoPE keys (`k_pe` [B, T, ropeHeads·ropeDim], after RoPE):
 * kvRank + ropeHeads·ropeDim elements per token (DeepSeek-V2 §2.1.2: (d_c + d_h^R) per token and layer). FLOPs:
 * 2 per projection weight per token; the core QKᵀ over nope + rope dimensions and the weighted sum over vDim ones.
 * Activation: the filter (if on), the query path, the K/V down-projection and its split, the latent RMSNorm, the
 * up-projection [B,S,A·(nope+v)], RoPE on q_pe and k_pe, K and Q assembled per head [B,A,S,nope+rope], the
 * attention core on heads padded to max(nope+rope, v), the output projection. Checkpoints: DeepSeek-V2's names
 * (`kv_a_proj_with_mqa`, `kv_b_proj`, ...; its RoPE dimensions are in this repo's rotate-half order).
 */
const mlaDescriptors = {
  activation(shape: AttentionShape, o: MlaOptions): ActivationTerms {
    const { batch: b, seq: sq, heads: a, hidden: h } = shape;
    const s = mlaSizes(shape.headDim, a, o);
    const bs = b * sq;
    const dqk = s.nope + s.rope;
    const width = Math.max(dqk, s.v);
    return joinActivation(
      o.filter ? filterActivation(b, sq, h, shape.fusedKernels) : NONE,
      s.qRank > 0 ? opActivation('query down-projection [B,S,qRank]', bs * s.qRank) : NONE,
      s.qRank > 0 && o.latentNorm ? rmsNormActivation('query latent RMSNorm', bs, s.qRank, shape.fusedKernels) : NONE,
      opActivation('query projection [B,S,A·(nope+rope)] and its split', 2 * bs * a * dqk),
      opActivation(
        'K/V down-projection [B,S,kvRank+ropeHeads·rope] and its split',
        2 * bs * (s.kvRank + s.ropeHeads * s.rope),
      ),
      o.latentNorm ? rmsNormActivation('K/V latent RMSNorm', bs, s.kvRank, shape.fusedKernels) : NONE,
      opActivation('K/V up-projection [B,S,A·(nope+v)] and its split', 2 * bs * a * (s.nope + s.v)),
      {
        saved: [
          {
            name: 'RoPE on q_pe and k_pe (split half, neg, concat, x·cos, rot·sin)',
            elements: 4 * bs * (a + s.ropeHeads) * s.rope,
          },
        ],
        gradients: [{ name: 'd RoPE on q_pe and k_pe', elements: 6 * bs * (a + s.ropeHeads) * s.rope }],
      },
      opActivation('Q, K assembled per head [B,A,S,nope+rope], V transposed', bs * a * (2 * dqk + s.v)),
      width !== dqk || width !== s.v ? opActivation('Q, K, V padded to one head width', 3 * bs * a * width) : NONE,
      attentionCoreActivation({ ...shape, hidden: a * width }),
      opActivation('attention output transposed back', bs * a * s.v),
      opActivation('output projection', bs * h),
    );
  },
  flops(shape: AttentionShape, o: MlaOptions): AttentionFlops {
    const { batch: b, seq: sq, heads: a, hidden: h } = shape;
    const s = mlaSizes(shape.headDim, a, o);
    return {
      projections: 2 * b * sq * projectionWeights(h, a, shape.headDim, o),
      core: 2 * b * sq * sq * a * (s.nope + s.rope + s.v),
      ...(o.filter ? { other: filterFlops(b, sq, h) } : {}),
    };
  },
  cache(spec: AttentionSpec, o: MlaOptions): CacheEntrySpec[] {
    const s = mlaSizes(spec.headDim, spec.numHeads, o);
    return [
      { name: 'c_kv', timeAxis: 1, elements: s.kvRank },
      { name: 'k_pe', timeAxis: 1, elements: s.ropeHeads * s.rope },
      ...(o.filter ? filterCache(spec) : []),
    ];
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<MlaOptions> | undefined {
    const down = weights.get('kv_a_proj_with_mqa.weight');
    const up = weights.get('kv_b_proj.weight');
    const out = weights.get('o_proj.weight');
    const q = weights.get('q_proj.weight') ?? weights.get('q_b_proj.weight');
    if (!down || !up || !out || !q) return undefined;
    const a = spec.numHeads;
    const kvRank = up[1];
    const v = out[1] / a;
    const nope = up[0] / a - v;
    const rope = q[0] / a - nope;
    const ropeHeads = (down[0] - kvRank) / rope;
    const qa = weights.get('q_a_proj.weight');
    return {
      kvRank,
      qRank: qa ? qa[0] : 0,
      nopeDim: nope,
      ropeDim: rope,
      vDim: v,
      ropeHeads,
      latentNorm: weights.has('kv_a_layernorm.weight'),
      filter: hasFilter(weights),
    };
  },
  /** `cN`: latent width N; `lfa`: with LFA's filter. */
  variant(suffix: string): Partial<MlaOptions> | undefined {
    if (suffix === 'lfa') return { filter: true };
    const c = /^c(\d+)$/.exec(suffix);
    return c ? { kvRank: Number(c[1]) } : undefined;
  },
  /**
   * TransMLA's exact step (Meng et al. 2025, §3: a GQA layer is an MLA layer whose up-projection copies each K/V
   * head to its query group) for a `gqa` layer without filter: the latent c_KV is V's g heads (`kv_b_proj` the 0/1
   * matrix that repeats them, W^UV), K's g heads become the RoPE keys (`ropeHeads` g, `ropeDim` d, `nopeDim` 0) and
   * Q and O are kept. The outputs are GQA's exactly and the cache holds g·d + g·d elements per token, as GQA's.
   * Not implemented: RoRoPE/FreqFold (folding RoPE into one shared key head) and the PCA that shrinks the latent,
   * which change the outputs and need fine-tuning.
   */
  convert(
    from: { name: string; options: Record<string, unknown> },
    spec: AttentionSpec,
    weights: ReadonlyMap<string, Float32Array>,
  ): { options: Partial<MlaOptions>; weights: Map<string, Float32Array> } {
    if (from.name !== 'gqa' && from.name !== 'mha')
      throw new YuanError('config', `attention mla: cannot convert from "${from.name}" (only gqa and mha checkpoints)`);
    const src = from.name === 'gqa' ? parseGqaOptions({ ...GQA_DEFAULTS, ...from.options }) : { filter: false };
    if (src.filter)
      throw new YuanError(
        'config',
        'attention mla: cannot convert gqa with filter (its K reads the filtered input, its V the plain one: no one latent holds both)',
      );
    const a = spec.numHeads;
    const d = spec.headDim;
    const g = from.name === 'gqa' ? gqaKvHeads(a, src) : a;
    const get = (n: string) => {
      const w = weights.get(n);
      if (!w) throw new YuanError('checkpoint', `attention mla: the ${from.name} layer has no ${n}`);
      return w;
    };
    const k = get('k_proj.weight');
    const v = get('v_proj.weight');
    const down = new Float32Array(k.length + v.length);
    down.set(v, 0); // latent c_KV = V's heads
    down.set(k, v.length); // then the RoPE keys: K's heads
    const up = new Float32Array(a * d * g * d);
    for (let h = 0; h < a; h++) {
      const j = Math.floor(h / (a / g));
      for (let i = 0; i < d; i++) up[(h * d + i) * g * d + j * d + i] = 1;
    }
    return {
      options: {
        kvRank: g * d,
        qRank: 0,
        nopeDim: 0,
        ropeDim: d,
        vDim: d,
        ropeHeads: g,
        latentNorm: false,
        filter: false,
      },
      weights: new Map([
        ['q_proj.weight', get('q_proj.weight')],
        ['kv_a_proj_with_mqa.weight', down],
        ['kv_b_proj.weight', up],
        ['o_proj.weight', get('o_proj.weight')],
      ]),
    };
  },
};

/** The `mla` plugin without its tensor code (`@yuan/attention-family/describe`); `mlaAttention` adds `create`. */
export const mlaDescription: AttentionDescription<MlaOptions> = {
  kind: 'attention',
  name: 'mla',
  description: 'multi-head latent attention (DeepSeek-V2): low-rank K/V latent and decoupled RoPE keys are the cache',
  defaults: MLA_DEFAULTS,
  validate: parseMlaOptions,
  parameters: mlaParameters,
  ...mlaDescriptors,
};
