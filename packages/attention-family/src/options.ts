import { bool, ConfigError, num, obj, optional } from '@yuan/core';

/** `gqa` options. */
export interface GqaOptions {
  /** Key/value heads g (query heads are shared in groups of numHeads/g); numHeads is MHA, 1 is MQA. Default numHeads/4 (or the largest divisor below it). */
  kvHeads?: number;
  /** LFA's filter (two causal convolutions and an RMSNorm) on the input of Q and K; V reads the unfiltered input. Default false. */
  filter: boolean;
}

/** `mla` options; sizes per head unless said otherwise, defaults relative to headDim d = hidden/heads. */
export interface MlaOptions {
  /** Width of the compressed K/V latent c_KV (DeepSeek-V2's d_c, `kv_lora_rank`). Default 4·d. */
  kvRank?: number;
  /** Width of the compressed query latent (`q_lora_rank`); 0 projects queries directly from the input. Default 0. */
  qRank: number;
  /** Query/key dimensions without RoPE, read from the latent (`qk_nope_head_dim`). Default d. */
  nopeDim?: number;
  /** Decoupled RoPE query/key dimensions (`qk_rope_head_dim`); must divide d and be even. Default d/2. */
  ropeDim?: number;
  /** Value dimensions per head (`v_head_dim`). Default d. */
  vDim?: number;
  /** RoPE key heads cached per token: 1 in DeepSeek-V2 (shared by all query heads); g after converting a g-head GQA. Default 1. */
  ropeHeads: number;
  /** RMSNorm on the latent (`kv_a_layernorm`, and `q_a_layernorm` with qRank > 0), as DeepSeek-V2. Default true. */
  latentNorm: boolean;
  /** LFA's filter on the input of the query path and of the K/V down-projection (so V is filtered too). Default false. */
  filter: boolean;
}

/** `based` options. */
export interface BasedOptions {
  /** Feature dimension f of the queries/keys of the Taylor (2nd order) linear attention, per head. Default 16. */
  featureDim: number;
  /** Keys the sliding-window softmax attention sees (the newest one included). Default 64. */
  window: number;
  /** LFA's filter on the input of the Q and K projections (of both mixers). Default false. */
  filter: boolean;
}

/** `landmark` options. */
export interface LandmarkOptions {
  /** Tokens per block; each finished block is represented by one landmark key (the mean of its keys). Default 16. */
  block: number;
  /** Past blocks a query may retrieve (by landmark score); 0 = all. Default 0. */
  topK: number;
  /** LFA's filter on the input of Q and K. Default false. */
  filter: boolean;
}

/** `gqa` defaults. */
export const GQA_DEFAULTS: GqaOptions = { filter: false };
/** `mla` defaults (DeepSeek-V2's design, sizes relative to the head size). */
export const MLA_DEFAULTS: MlaOptions = { qRank: 0, ropeHeads: 1, latentNorm: true, filter: false };
/** `based` defaults (feature dimension 16 as in the Based paper). */
export const BASED_DEFAULTS: BasedOptions = { featureDim: 16, window: 64, filter: false };
/** `landmark` defaults. */
export const LANDMARK_DEFAULTS: LandmarkOptions = { block: 16, topK: 0, filter: false };

const count = (min: number) => num({ int: true, min });

/** Validates `gqa` options. */
export function parseGqaOptions(o: Record<string, unknown>): GqaOptions {
  return obj({ kvHeads: optional(count(1)), filter: bool() }).parse(o, 'attention.options') as GqaOptions;
}

/** Validates `mla` options. */
export function parseMlaOptions(o: Record<string, unknown>): MlaOptions {
  return obj({
    kvRank: optional(count(1)),
    qRank: count(0),
    nopeDim: optional(count(0)),
    ropeDim: optional(count(2)),
    vDim: optional(count(1)),
    ropeHeads: count(1),
    latentNorm: bool(),
    filter: bool(),
  }).parse(o, 'attention.options') as MlaOptions;
}

/** Validates `based` options. */
export function parseBasedOptions(o: Record<string, unknown>): BasedOptions {
  return obj({ featureDim: count(1), window: count(2), filter: bool() }).parse(o, 'attention.options') as BasedOptions;
}

/** Validates `landmark` options. */
export function parseLandmarkOptions(o: Record<string, unknown>): LandmarkOptions {
  return obj({ block: count(1), topK: count(0), filter: bool() }).parse(o, 'attention.options') as LandmarkOptions;
}

function invalid(field: string, value: number, expected: string): never {
  throw new ConfigError(`invalid config: attention.options.${field} = ${value}; expected ${expected}`);
}

/** The key/value heads of a `gqa` layer: the option (a divisor of numHeads) or the default. */
export function gqaKvHeads(heads: number, o: GqaOptions): number {
  if (o.kvHeads === undefined) {
    let g = Math.max(1, Math.floor(heads / 4));
    while (heads % g !== 0) g--;
    return g;
  }
  if (heads % o.kvHeads !== 0) invalid('kvHeads', o.kvHeads, `a divisor of model.numHeads = ${heads}`);
  return o.kvHeads;
}

/** The sizes of an `mla` layer with its defaults filled in. */
export interface MlaSizes {
  kvRank: number;
  qRank: number;
  nope: number;
  rope: number;
  v: number;
  ropeHeads: number;
}

/** `mla`'s sizes for a head size d and head count (defaults filled in, constraints checked). */
export function mlaSizes(headDim: number, heads: number, o: MlaOptions): MlaSizes {
  const rope = o.ropeDim ?? Math.max(2, headDim / 2);
  if (rope % 2 !== 0 || headDim % rope !== 0) invalid('ropeDim', rope, `an even divisor of the head size ${headDim}`);
  if (heads % o.ropeHeads !== 0) invalid('ropeHeads', o.ropeHeads, `a divisor of model.numHeads = ${heads}`);
  return {
    kvRank: o.kvRank ?? 4 * headDim,
    qRank: o.qRank,
    nope: o.nopeDim ?? headDim,
    rope,
    v: o.vDim ?? headDim,
    ropeHeads: o.ropeHeads,
  };
}
