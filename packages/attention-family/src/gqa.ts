import { linear, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { expandHeads, mergeHeads, rope, softmaxCore, split, toHeads } from './core.js';
import { createFilter } from './filter.js';
import { gqaDescription } from './gqa-describe.js';
import { gqaKvHeads, type GqaOptions } from './options.js';

/**
 * Grouped-query attention (Ainslie et al. 2023, "GQA"): g key/value heads, each shared by numHeads/g query heads
 * (LLaMA's `repeat_kv` order: query head h reads key/value head ⌊h·g/A⌋); RoPE and causal softmax as in `mha`. The
 * cache holds only the g heads. With `filter`, Q and K read LFA's filtered input (V the plain one), as in `lfa`.
 */
export const gqaAttention: TensorAttentionPlugin<GqaOptions> = {
  ...gqaDescription,
  create(spec, o, param) {
    const [wq, wk, wv, wo] = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
    const g = gqaKvHeads(spec.numHeads, o);
    const d = spec.headDim;
    const filter = o.filter ? createFilter(param, spec.rmsNormEps) : undefined;
    return {
      forward(x, ctx) {
        const f = filter?.apply(x, ctx.cache, ctx.useCache);
        const z = f?.z ?? x;
        const q = toHeads(rope(split(linear(z, wq), spec.numHeads, d), ctx.cos, ctx.sin));
        let k = toHeads(rope(split(linear(z, wk), g, d), ctx.cos, ctx.sin));
        let v = toHeads(split(linear(x, wv), g, d));
        if (ctx.cache?.k) {
          k = tf.concat([ctx.cache.k as tf.Tensor4D, k], 2);
          v = tf.concat([ctx.cache.v as tf.Tensor4D, v], 2);
        }
        const o4 = softmaxCore(q, expandHeads(k, spec.numHeads), expandHeads(v, spec.numHeads), ctx.keyBias);
        const out = linear(mergeHeads(o4), wo) as tf.Tensor3D;
        return ctx.useCache ? { out, cache: { k, v, ...f?.state } } : { out };
      },
    };
  },
};
