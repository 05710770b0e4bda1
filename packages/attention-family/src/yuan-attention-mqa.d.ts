// Types of the example third-party plugin package (examples/attention-mqa ships plain JavaScript with JSDoc types).
declare module 'yuan-attention-mqa' {
  import type { TensorAttentionPlugin } from '@yuan/tensor';
  /** Multi-query attention: query heads share `kvHeads` key/value heads. */
  export const mqaAttention: TensorAttentionPlugin<{ kvHeads: number }>;
  /** The plugins the package provides. */
  export const plugins: TensorAttentionPlugin<{ kvHeads: number }>[];
}
