import { linear, ropeAttention, tf, type DecodingAttentionPlugin } from '@yuan/tensor';
import { createMhaDecoder } from './infer/mha-decode.js';
import { mhaDescription } from './mha-describe.js';

/**
 * The baseline multi-head attention ("Attention (basic)" of the YUAN 2.0 ablation): Q, K, V from the same input,
 * RoPE, causal softmax. All but `create` and `createDecoder` is `mhaDescription`.
 */
export const mhaAttention: DecodingAttentionPlugin<Record<string, never>> = {
  ...mhaDescription,
  createDecoder: createMhaDecoder,
  create(spec, _options, param) {
    const [wq, wk, wv, wo] = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
    const heads = (x: tf.Tensor) => {
      const [b, t] = x.shape;
      return tf.reshape(x, [b, t, spec.numHeads, spec.headDim]) as tf.Tensor4D;
    };
    return {
      forward(x, ctx) {
        const r = ropeAttention(heads(linear(x, wq)), heads(linear(x, wk)), heads(linear(x, wv)), ctx);
        return { out: linear(r.out, wo) as tf.Tensor3D, cache: r.cache };
      },
    };
  },
};
