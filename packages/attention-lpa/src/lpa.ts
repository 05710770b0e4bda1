import { linear, ropeAttention, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { lpaDescription } from './describe.js';
import { PROJECTIONS, type LpaOptions } from './options.js';

/**
 * Low-dimensional Projected Attention (Lv et al. 2024): the Q, K, V and output projections of the attention layer
 * are low-rank products (h → r → h); RoPE and causal softmax attention are as in basic attention. The MLP of the
 * block stays full-rank (it is not part of this plugin). All but `create` is `lpaDescription`.
 */
export const lpaAttention: TensorAttentionPlugin<LpaOptions> = {
  ...lpaDescription,
  create(spec, _o, param) {
    const project = (x: tf.Tensor, p: (typeof PROJECTIONS)[number]) =>
      linear(linear(x, param(`${p}.down.weight`)), param(`${p}.up.weight`));
    const heads = (x: tf.Tensor) => {
      const [b, t] = x.shape;
      return tf.reshape(x, [b, t, spec.numHeads, spec.headDim]) as tf.Tensor4D;
    };
    return {
      forward(x, ctx) {
        const r = ropeAttention(
          heads(project(x, 'q_proj')),
          heads(project(x, 'k_proj')),
          heads(project(x, 'v_proj')),
          ctx,
        );
        return { out: project(r.out, 'o_proj') as tf.Tensor3D, cache: r.cache };
      },
    };
  },
};
