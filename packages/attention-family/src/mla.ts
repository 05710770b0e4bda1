import { linear, rmsNorm, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { expandHeads, mergeHeads, narrowRope, rope, softmaxCore, split, toHeads } from './core.js';
import { createFilter } from './filter.js';
import { mlaDescription } from './mla-describe.js';
import { mlaSizes, type MlaOptions } from './options.js';

/**
 * Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 §2.1): K and V are up-projected from one latent
 * c_KV = W^DKV·x per token (`kv_a_proj_with_mqa`, RMSNorm, `kv_b_proj`), and RoPE rides on decoupled query/key
 * dimensions whose keys (`ropeHeads` of them, one in DeepSeek-V2) are shared by the query heads. The cache holds
 * only c_KV and the RoPE keys. K and V are re-expanded from the cached latent at every step (W^UK is not absorbed
 * into the queries: same outputs, more FLOPs at decode). All but `create` is `mlaDescription`.
 */
export const mlaAttention: TensorAttentionPlugin<MlaOptions> = {
  ...mlaDescription,
  create(spec, o, param) {
    const a = spec.numHeads;
    const s = mlaSizes(spec.headDim, a, o);
    const w = (n: string) => param(n);
    const wq = s.qRank > 0 ? undefined : w('q_proj.weight');
    const [wqa, wqb] = s.qRank > 0 ? [w('q_a_proj.weight'), w('q_b_proj.weight')] : [];
    const wqn = s.qRank > 0 && o.latentNorm ? w('q_a_layernorm.weight') : undefined;
    const [wkva, wkvb, wo] = ['kv_a_proj_with_mqa.weight', 'kv_b_proj.weight', 'o_proj.weight'].map(w);
    const wkvn = o.latentNorm ? w('kv_a_layernorm.weight') : undefined;
    const filter = o.filter ? createFilter(param, spec.rmsNormEps) : undefined;
    const dqk = s.nope + s.rope;
    return {
      forward(x, ctx) {
        const f = filter?.apply(x, ctx.cache, ctx.useCache);
        const z = f?.z ?? x;
        const [b, t] = x.shape;
        const cos = narrowRope(ctx.cos, s.rope);
        const sin = narrowRope(ctx.sin, s.rope);
        const qLatent = wqa ? linear(z, wqa) : undefined;
        const qAll = split(
          qLatent ? linear(wqn ? rmsNorm(qLatent, wqn, spec.rmsNormEps) : qLatent, wqb!) : linear(z, wq!),
          a,
          dqk,
        );
        const qPe = rope(
          s.nope > 0 ? (tf.slice(qAll, [0, 0, 0, s.nope], [b, t, a, s.rope]) as tf.Tensor4D) : qAll,
          cos,
          sin,
        );
        const q =
          s.nope > 0 ? (tf.concat([tf.slice(qAll, [0, 0, 0, 0], [b, t, a, s.nope]), qPe], 3) as tf.Tensor4D) : qPe;
        const down = linear(z, wkva);
        const cRaw = tf.slice(down, [0, 0, 0], [b, t, s.kvRank]);
        let c = (wkvn ? rmsNorm(cRaw, wkvn, spec.rmsNormEps) : cRaw) as tf.Tensor3D;
        let kPe = tf.reshape(
          rope(split(tf.slice(down, [0, 0, s.kvRank], [b, t, s.ropeHeads * s.rope]), s.ropeHeads, s.rope), cos, sin),
          [b, t, s.ropeHeads * s.rope],
        ) as tf.Tensor3D;
        if (ctx.cache?.c_kv) {
          c = tf.concat([ctx.cache.c_kv as tf.Tensor3D, c], 1);
          kPe = tf.concat([ctx.cache.k_pe as tf.Tensor3D, kPe], 1);
        }
        const total = c.shape[1];
        const kv = split(linear(c, wkvb), a, s.nope + s.v); // [B, S, A, nope + v]
        const v = toHeads(tf.slice(kv, [0, 0, 0, s.nope], [b, total, a, s.v]) as tf.Tensor4D);
        const pe = expandHeads(toHeads(split(kPe, s.ropeHeads, s.rope)), a); // [B, A, S, rope]
        const k =
          s.nope > 0
            ? (tf.concat(
                [toHeads(tf.slice(kv, [0, 0, 0, 0], [b, total, a, s.nope]) as tf.Tensor4D), pe],
                3,
              ) as tf.Tensor4D)
            : pe;
        const out = linear(mergeHeads(softmaxCore(toHeads(q), k, v, ctx.keyBias)), wo) as tf.Tensor3D;
        return ctx.useCache ? { out, cache: { c_kv: c, k_pe: kPe, ...f?.state } } : { out };
      },
    };
  },
};
