import { causalConv1d, linear, rmsNorm, ropeAttention, tf, type DecodingAttentionPlugin } from '@yuan/tensor';
import { createLfaDecoder } from './decode.js';
import { lfaDescription } from './describe.js';
import type { LfaOptions } from './options.js';

/** The last `keep` time steps of history ++ x ([B, T, C]), zero-padded in front when there are fewer. */
function lastSteps(history: tf.Tensor3D | undefined, x: tf.Tensor3D, keep: number): tf.Tensor3D {
  const [b, t, c] = x.shape;
  const all = tf.concat([history ?? tf.zeros([b, keep, c]), x], 1) as tf.Tensor3D;
  return tf.slice(all, [0, all.shape[1] - keep, 0], [b, keep, c]);
}

/**
 * Localized Filtering-based Attention (YUAN 2.0, arXiv 2311.15786): Q and K come from
 * RMSNorm(conv2(conv1(x)) + x), two causal convolutions over time, V from the unfiltered x. The fused QK weight is
 * grouped per head ([Q_h | K_h]); it is exchanged as HF `q_proj` (rows 0..H) and `k_proj` (rows H..2H). The generation
 * cache holds the last kernel−1 inputs of each convolution besides K and V. All but `create` is `lfaDescription`.
 */
export const lfaAttention: DecodingAttentionPlugin<LfaOptions> = {
  ...lfaDescription,
  createDecoder: createLfaDecoder,
  create(spec, o, param) {
    const [wqk, wv, wo] = ['qk_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
    const w1 = param('lf_gate.conv1.weight');
    const b1 = param('lf_gate.conv1.bias');
    const w2 = o.convs === 2 ? param('lf_gate.conv2.weight') : undefined;
    const b2 = o.convs === 2 ? param('lf_gate.conv2.bias') : undefined;
    const wn = o.norm ? param('lf_gate.output_layernorm.weight') : undefined;
    const history = o.kernel - 1;
    return {
      forward(x, ctx) {
        const [b, t] = x.shape;
        const cache = ctx.cache;
        const xHist = history > 0 ? (cache?.lf_x as tf.Tensor3D | undefined) : undefined;
        const u = causalConv1d(x, w1, b1, xHist);
        const uHist = history > 0 && w2 ? (cache?.lf_u as tf.Tensor3D | undefined) : undefined;
        const filtered = w2 ? causalConv1d(u, w2, b2, uHist) : u;
        const residual = tf.add(filtered, x);
        const z = wn ? rmsNorm(residual, wn, spec.rmsNormEps) : residual;
        const qk = tf.reshape(linear(z, wqk), [b, t, spec.numHeads, 2 * spec.headDim]);
        const [q, k] = tf.split(qk, 2, -1) as [tf.Tensor4D, tf.Tensor4D];
        const v = tf.reshape(linear(x, wv), [b, t, spec.numHeads, spec.headDim]) as tf.Tensor4D;
        const r = ropeAttention(q, k, v, ctx);
        const out = linear(r.out, wo) as tf.Tensor3D;
        if (!r.cache) return { out };
        const next = { ...r.cache };
        if (history > 0) {
          next.lf_x = lastSteps(xHist, x, history);
          if (w2) next.lf_u = lastSteps(uHist, u as tf.Tensor3D, history);
        }
        return { out, cache: next };
      },
    };
  },
};
