import type { AttentionSpec, ParameterSpec } from '@yuan/core';
import { linear, ropeAttention, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { mhaDescriptors } from './mha-describe.js';

/** The baseline multi-head attention ("Attention (basic)" of the YUAN 2.0 ablation): Q, K, V from the same input, RoPE, causal softmax. */
export const mhaAttention: TensorAttentionPlugin<Record<string, never>> = {
  kind: 'attention',
  name: 'mha',
  description: 'basic multi-head attention (LLaMA style): q/k/v/o projections, RoPE, causal softmax',
  defaults: {},
  validate(options) {
    const extra = Object.keys(options);
    if (extra.length) throw new Error(`attention mha takes no options (got ${extra.join(', ')})`);
    return {};
  },
  parameters(spec: AttentionSpec): ParameterSpec[] {
    const h = spec.hiddenSize;
    const init = { kind: 'normal', std: spec.initStd } as const;
    const out = { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) } as const;
    return [
      { name: 'q_proj.weight', shape: [h, h], init },
      { name: 'k_proj.weight', shape: [h, h], init },
      { name: 'v_proj.weight', shape: [h, h], init },
      { name: 'o_proj.weight', shape: [h, h], init: out },
    ];
  },
  ...mhaDescriptors,
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
