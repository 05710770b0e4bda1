import { linear, tf, type AttentionCache, type TensorAttentionPlugin } from '@yuan/tensor';
import { basedDescription } from './based-describe.js';
import { mergeHeads, rope, split, toHeads } from './core.js';
import { createFilter } from './filter.js';
import type { BasedOptions } from './options.js';

const NEG = -1e9;

/** φ(x) = [1, x/f^¼, vec(x⊗x)/(√2·√f)] for x [B,A,T,f], so φ(q)·φ(k) = 1 + q·k/√f + (q·k)²/(2f) (Based's Taylor map). */
function taylor(x: tf.Tensor4D): tf.Tensor4D {
  const [b, a, t, f] = x.shape;
  const outer = tf.reshape(tf.mul(tf.expandDims(x, 4), tf.expandDims(x, 3)), [b, a, t, f * f]);
  return tf.concat(
    [tf.ones([b, a, t, 1]), tf.mul(x, Math.pow(f, -0.25)), tf.mul(outer, 1 / (Math.SQRT2 * Math.sqrt(f)))],
    3,
  ) as tf.Tensor4D;
}

/** [T, P + T] additive mask: new query i (absolute P + i) sees keys P + i − window + 1 .. P + i. */
function bandMask(p: number, t: number, window: number): tf.Tensor2D {
  const data = new Float32Array(t * (p + t));
  for (let i = 0; i < t; i++)
    for (let j = 0; j < p + t; j++) if (j > p + i || j < p + i - window + 1) data[i * (p + t) + j] = NEG;
  return tf.tensor2d(data, [t, p + t]);
}

/**
 * Based (Arora et al. 2024, "Simple linear attention language models balance the recall-throughput tradeoff"): a
 * linear attention with the 2nd-order Taylor feature map on small per-head feature queries/keys (f = 16) for global
 * recall, plus sliding-window softmax attention (with RoPE) for local precision. The paper stacks the two as
 * separate layer types (with short convolutions); here every layer has both, sharing V and the output projection,
 * their outputs summed; LFA's filter (`filter`) plays the short convolution's part on Q and K. Decoding keeps a
 * fixed-size state: memory does not grow with the generated length beyond the window. Batched serving never pads
 * it (no time axis), so `keyBias` is not needed and is ignored.
 */
export const basedAttention: TensorAttentionPlugin<BasedOptions> = {
  ...basedDescription,
  create(spec, o, param) {
    const [wq, wk, wv, wfq, wfk, wo] = [
      'q_proj.weight',
      'k_proj.weight',
      'v_proj.weight',
      'feature_q_proj.weight',
      'feature_k_proj.weight',
      'o_proj.weight',
    ].map(param);
    const a = spec.numHeads;
    const d = spec.headDim;
    const f = o.featureDim;
    const past = o.window - 1;
    const filter = o.filter ? createFilter(param, spec.rmsNormEps) : undefined;
    return {
      forward(x, ctx) {
        const fl = filter?.apply(x, ctx.cache, ctx.useCache);
        const z = fl?.z ?? x;
        const [b, t] = x.shape;
        const cache = ctx.cache;
        const v = toHeads(split(linear(x, wv), a, d)); // [B,A,T,d]
        // linear attention: within the new tokens in quadratic form, plus the state of the earlier ones
        const fq = toHeads(split(linear(z, wfq), a, f));
        const fk = toHeads(split(linear(z, wfk), a, f));
        const xs = tf.mul(tf.matMul(fq, fk, false, true), 1 / Math.sqrt(f));
        const causal = tf.linalg.bandPart(tf.ones([t, t]), -1, 0);
        const s = tf.mul(tf.add(tf.add(1, xs), tf.mul(tf.square(xs), 0.5)), causal);
        let num = tf.matMul(s, v);
        let den = tf.sum(s, -1, true);
        const phiQ = cache?.lin_s ? taylor(fq) : undefined;
        if (phiQ) {
          num = tf.add(num, tf.matMul(phiQ, cache!.lin_s as tf.Tensor4D));
          den = tf.add(den, tf.matMul(phiQ, tf.expandDims(cache!.lin_z, -1) as tf.Tensor4D));
        }
        const linearOut = tf.div(num, den) as tf.Tensor4D;
        // sliding-window softmax attention over the last `window` keys
        const q = toHeads(rope(split(linear(z, wq), a, d), ctx.cos, ctx.sin));
        let k = toHeads(rope(split(linear(z, wk), a, d), ctx.cos, ctx.sin));
        let vw = v;
        let bias = tf.zeros([b, 1, 1, t]);
        const p = cache?.win_k || ctx.useCache ? past : 0;
        if (p > 0) {
          k = tf.concat([(cache?.win_k as tf.Tensor4D) ?? tf.zeros([b, a, p, d]), k], 2);
          vw = tf.concat([(cache?.win_v as tf.Tensor4D) ?? tf.zeros([b, a, p, d]), v], 2);
          bias = tf.concat([cache?.win_bias ?? tf.fill([b, 1, 1, p], NEG), bias], 3);
        }
        const scores = tf.add(
          tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)), bandMask(p, t, o.window)),
          bias,
        );
        const windowOut = tf.matMul(tf.softmax(scores), vw) as tf.Tensor4D;
        const out = linear(mergeHeads(tf.add(linearOut, windowOut) as tf.Tensor4D), wo) as tf.Tensor3D;
        if (!ctx.useCache) return { out };
        const phiK = taylor(fk);
        const state: AttentionCache = {
          lin_s: tf.add(cache?.lin_s ?? 0, tf.matMul(phiK, v, true, false)),
          lin_z: tf.add(cache?.lin_z ?? 0, tf.sum(phiK, 2)),
          win_k: tf.slice(k, [0, 0, t, 0], [b, a, p, d]),
          win_v: tf.slice(vw, [0, 0, t, 0], [b, a, p, d]),
          win_bias: tf.slice(bias, [0, 0, 0, t], [b, 1, 1, p]),
          ...fl?.state,
        };
        return { out, cache: state };
      },
    };
  },
};
