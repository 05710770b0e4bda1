import { causalConv1d, rmsNorm, tf, type AttentionCache } from '@yuan/tensor';
import { FILTER_KERNEL } from './filter-describe.js';

/** The last `keep` time steps of history ++ x ([B, T, C]), zero-padded in front when there are fewer. */
function lastSteps(history: tf.Tensor3D | undefined, x: tf.Tensor3D, keep: number): tf.Tensor3D {
  const [b, , c] = x.shape;
  const all = tf.concat([history ?? tf.zeros([b, keep, c]), x], 1) as tf.Tensor3D;
  return tf.slice(all, [0, all.shape[1] - keep, 0], [b, keep, c]);
}

/** A layer's filter: `apply` gives z = RMSNorm(conv2(conv1(x)) + x) and the convolution state for the next call. */
export interface Filter {
  apply(
    x: tf.Tensor3D,
    cache: AttentionCache | undefined,
    useCache: boolean,
  ): { z: tf.Tensor3D; state: AttentionCache };
}

/** LFA's filter over the layer's `lf_gate.*` weights (`filterParameters`); `eps` is the model's RMSNorm epsilon. */
export function createFilter(param: (name: string) => tf.Tensor, eps: number): Filter {
  const [w1, b1, w2, b2, wn] = [
    'lf_gate.conv1.weight',
    'lf_gate.conv1.bias',
    'lf_gate.conv2.weight',
    'lf_gate.conv2.bias',
    'lf_gate.output_layernorm.weight',
  ].map(param);
  const keep = FILTER_KERNEL - 1;
  return {
    apply(x, cache, useCache) {
      const xHist = cache?.lf_x as tf.Tensor3D | undefined;
      const uHist = cache?.lf_u as tf.Tensor3D | undefined;
      const u = causalConv1d(x, w1, b1, xHist);
      const z = rmsNorm(tf.add(causalConv1d(u, w2, b2, uHist), x), wn, eps) as tf.Tensor3D;
      const state: AttentionCache = useCache
        ? { lf_x: lastSteps(xHist, x, keep), lf_u: lastSteps(uHist, u, keep) }
        : {};
      return { z, state };
    },
  };
}
