// Multi-query attention (Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You Need"): every query head
// attends over ONE shared key/value head, so K and V projections are [headDim, hidden] instead of [hidden, hidden] and
// the generation cache is numHeads times smaller. A yuan attention plugin written outside the yuan repository: it uses
// only the public entries of @yuan/core (the descriptor helpers) and @yuan/tensor (tf, linear, ropeAttention), as
// peer dependencies.
import {
  joinActivation,
  opActivation,
  ropeAttentionActivation,
  ropeAttentionCache,
  ropeAttentionFlops,
} from '@yuan/core';
import { linear, ropeAttention, tf } from '@yuan/tensor';

/** Options: `kvHeads` shared key/value heads (1 = multi-query; numHeads would be plain multi-head). Default 1. */
const DEFAULTS = { kvHeads: 1 };

/** @type {import('@yuan/tensor').TensorAttentionPlugin<{ kvHeads: number }>} */
export const mqaAttention = {
  kind: 'attention',
  name: 'mqa',
  description: 'multi-query attention: query heads share kvHeads key/value heads (example third-party plugin)',
  defaults: DEFAULTS,
  validate(options) {
    const extra = Object.keys(options).filter((k) => !(k in DEFAULTS));
    if (extra.length) throw new Error(`attention mqa: unknown option ${extra.join(', ')} (options: kvHeads)`);
    const kvHeads = options.kvHeads ?? DEFAULTS.kvHeads;
    if (!Number.isInteger(kvHeads) || kvHeads < 1)
      throw new Error(`attention mqa: options.kvHeads = ${JSON.stringify(kvHeads)}; expected a positive integer`);
    return { kvHeads };
  },
  parameters(spec, options) {
    if (spec.numHeads % options.kvHeads !== 0)
      throw new Error(`attention mqa: numHeads ${spec.numHeads} is not a multiple of kvHeads ${options.kvHeads}`);
    const h = spec.hiddenSize;
    const kv = options.kvHeads * spec.headDim;
    const init = { kind: 'normal', std: spec.initStd };
    return [
      { name: 'q_proj.weight', shape: [h, h], init },
      { name: 'k_proj.weight', shape: [kv, h], init },
      { name: 'v_proj.weight', shape: [kv, h], init },
      {
        name: 'o_proj.weight',
        shape: [h, h],
        init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
      },
    ];
  },
  // What the planner, the step-time model, serving and checkpoint import need to know, as plain arithmetic.
  /** Q [B,S,H], K and V [B,S,kvHeads·d], their copies for every query head (a gather, when shared), the attention core, the output projection. */
  activation(shape, options) {
    const bs = shape.batch * shape.seq;
    const bsh = bs * shape.hidden;
    const kv = bs * options.kvHeads * shape.headDim;
    return joinActivation(
      opActivation('Q projection', bsh),
      opActivation('K, V projections [B,S,kvHeads·d]', 2 * kv),
      options.kvHeads < shape.heads
        ? opActivation('K, V gathered for every query head', 2 * bsh)
        : { saved: [], gradients: [] },
      ropeAttentionActivation(shape),
      opActivation('output projection', bsh),
    );
  },
  /** 2·H·(2H + 2·kvHeads·d) per token for the projections; the core as every softmax attention. */
  flops(shape, options) {
    const h = shape.hidden;
    return {
      projections: 2 * shape.batch * shape.seq * h * (2 * h + 2 * options.kvHeads * shape.headDim),
      core: ropeAttentionFlops(shape),
    };
  },
  /** The K/V cache of `ropeAttention`; this example caches the heads after sharing them, so it is as large as basic attention's. */
  cache(spec) {
    return ropeAttentionCache(spec);
  },
  /** A layer with q/k/v/o_proj where K and V have fewer rows than Q (fewer key/value heads): kvHeads = rows / headDim. */
  recognize(weights, spec) {
    const q = weights.get('q_proj.weight');
    const k = weights.get('k_proj.weight');
    if (
      !q ||
      !k ||
      !weights.has('v_proj.weight') ||
      !weights.has('o_proj.weight') ||
      k[0] >= q[0] ||
      k[0] % spec.headDim !== 0
    )
      return undefined;
    return { kvHeads: k[0] / spec.headDim };
  },
  create(spec, options, param) {
    const [wq, wk, wv, wo] = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
    const group = spec.numHeads / options.kvHeads;
    const split = (x, heads) => tf.reshape(x, [x.shape[0], x.shape[1], heads, spec.headDim]);
    // [B, T, kvHeads, D] → [B, T, numHeads, D]: query head h reads key/value head floor(h / group)
    const owner = Array.from({ length: spec.numHeads }, (_, h) => Math.floor(h / group));
    const share = (x) => (group === 1 ? x : tf.gather(x, owner, 2));
    return {
      forward(x, ctx) {
        const r = ropeAttention(
          split(linear(x, wq), spec.numHeads),
          share(split(linear(x, wk), options.kvHeads)),
          share(split(linear(x, wv), options.kvHeads)),
          ctx,
        );
        return { out: linear(r.out, wo), cache: r.cache };
      },
    };
  },
};

/**
 * A preset shipped by the plugin package (registry kind `preset`): `yuan train --plugin yuan-attention-mqa --preset
 * tiny-mqa` finds it once the package is loaded. The laptop-sized shape of yuan's tiny presets, with multi-query attention.
 */
export const tinyMqaPreset = {
  kind: 'preset',
  name: 'tiny-mqa',
  description: 'tiny byte-level model with multi-query attention, one shared K/V head (4 layers, hidden 128)',
  defaults: {},
  config: {
    preset: 'tiny-mqa',
    model: { vocabSize: 264, hiddenSize: 128, numLayers: 4, numHeads: 4, ffnSize: 512, maxPositions: 512 },
    attention: { name: 'mqa', options: { kvHeads: 1 } },
    tokenizer: { name: 'bytes' },
  },
};

/** The plugins this package provides: `yuan` registers exactly this list (its one named export for plugins). */
export const plugins = [mqaAttention, tinyMqaPreset];
