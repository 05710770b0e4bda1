import { applyRope, causalAttention, tf } from '@yuan/tensor';

/** [B, T, heads, d] → [B, heads, T, d]. */
export function toHeads(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 1, 3]) as tf.Tensor4D;
}

/** [B, T, n·d] → [B, T, n, d]. */
export function split(x: tf.Tensor, n: number, d: number): tf.Tensor4D {
  return tf.reshape(x, [x.shape[0]!, x.shape[1]!, n, d]) as tf.Tensor4D;
}

/** [B, g, T, d] → [B, heads, T, d]: query head h reads head floor(h / (heads / g)) (LLaMA's `repeat_kv` order). */
export function expandHeads(x: tf.Tensor4D, heads: number): tf.Tensor4D {
  const g = x.shape[1];
  if (g === heads) return x;
  const group = heads / g;
  return tf.gather(
    x,
    Array.from({ length: heads }, (_, h) => Math.floor(h / group)),
    1,
  ) as tf.Tensor4D;
}

/**
 * Causal softmax attention through `causalAttention` of @yuan/tensor (the fused kernel on `native`) for q, k
 * [B, A, Tq|Tk, dq] and v [B, A, Tk, dv] with dq ≠ dv allowed: the narrower side is zero-padded to the wider (zeros
 * add nothing to q·k or to the output) and q is scaled so the softmax scale stays 1/√dq. Returns [B, A, Tq, dv].
 */
export function softmaxCore(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyBias?: tf.Tensor4D): tf.Tensor4D {
  const dq = q.shape[3];
  const dv = v.shape[3];
  if (dq === dv) return causalAttention(q, k, v, keyBias);
  const d = Math.max(dq, dv);
  const pad = (x: tf.Tensor4D) =>
    x.shape[3] === d
      ? x
      : (tf.pad(x, [
          [0, 0],
          [0, 0],
          [0, 0],
          [0, d - x.shape[3]],
        ]) as tf.Tensor4D);
  const o = causalAttention(pad(tf.mul(q, Math.sqrt(d / dq)) as tf.Tensor4D), pad(k), pad(v), keyBias);
  return dv === d ? o : (tf.slice(o, [0, 0, 0, 0], [-1, -1, -1, dv]) as tf.Tensor4D);
}

/** [B, A, T, d] → [B, T, A·d]. */
export function mergeHeads(o: tf.Tensor4D): tf.Tensor3D {
  const [b, a, t, d] = o.shape;
  return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, t, a * d]) as tf.Tensor3D;
}

/** RoPE tables of width `dim` (an even divisor of the model's head size) taken from the model's [B, T, 1, headDim] ones. */
export function narrowRope(table: tf.Tensor4D, dim: number): tf.Tensor4D {
  const d = table.shape[3];
  if (dim === d) return table;
  // angle i of a width-`dim` table is base^(−2i/dim)·pos = angle i·d/dim of the width-d one
  const half = Array.from({ length: dim / 2 }, (_, i) => (i * d) / dim);
  return tf.gather(table, [...half, ...half.map((i) => i + d / 2)], 3) as tf.Tensor4D;
}

/** RoPE on x [B, T, n, d] with the tables of the new positions. */
export function rope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return applyRope(x, cos, sin);
}
