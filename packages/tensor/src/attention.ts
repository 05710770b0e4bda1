import type { AttentionPlugin } from '@yuan/core';
import { fusedFor } from './fused.js';
import { applyRope, causalAttention } from './nn.js';
import { tf } from './tf.js';

/** Tensors an attention layer keeps between generation steps (K/V and whatever else the variant needs). */
export type AttentionCache = Record<string, tf.Tensor>;

/** Per-call inputs of an attention layer: rotary tables for the new positions and the cache of earlier steps. */
export interface AttentionContext {
  /** [B, T, 1, headDim] tables for the positions of the T new tokens. */
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** The cache returned by the previous call, or undefined on the first call. */
  cache?: AttentionCache;
  /** Whether to return a cache for the next call (generation) or not (training, full recompute). */
  useCache: boolean;
  /**
   * Optional additive bias on the attention scores over all keys (cache ++ new), [B, 1, 1, S]: 0 for a key a row may
   * see, a large negative number for padding (batched generation of sequences with different cache lengths).
   */
  keyBias?: tf.Tensor4D;
}

/** One attention layer: x [B, T, H] (the input-normed hidden states) → [B, T, H], plus the cache for the next call. */
export interface AttentionLayer {
  forward(x: tf.Tensor3D, ctx: AttentionContext): { out: tf.Tensor3D; cache?: AttentionCache };
}

/** An attention plugin whose layers run on TensorFlow.js tensors. */
export type TensorAttentionPlugin<Options = Record<string, unknown>> = AttentionPlugin<
  Options,
  AttentionLayer,
  tf.Tensor
>;

/**
 * The attention core shared by the variants: RoPE on q and k ([B, T, heads, d]), append k and v to the cache,
 * causal softmax attention, heads merged back to [B, T, H]. Returns the output and, if asked, the grown K/V cache.
 */
export function ropeAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  ctx: AttentionContext,
): { out: tf.Tensor3D; cache?: AttentionCache } {
  const [b, t, heads, d] = q.shape;
  const toHeads = (x: tf.Tensor4D) => tf.transpose(x, [0, 2, 1, 3]) as tf.Tensor4D; // [B, heads, T, d]
  // rotary embedding and the move to [B, heads, T, d]: one fused kernel where the backend has it
  const [cb, ct, , cd] = ctx.cos.shape;
  const tables =
    (cb === 1 || cb === b) &&
    ct === t &&
    ctx.cos.shape[2] === 1 &&
    cd === d &&
    ctx.sin.shape.join() === ctx.cos.shape.join();
  const rope = tables ? fusedFor(q)?.ropeHeads : undefined;
  const ropeHeads = (x: tf.Tensor4D) => (rope ? rope(x, ctx.cos, ctx.sin) : toHeads(applyRope(x, ctx.cos, ctx.sin)));
  let kh = ropeHeads(k);
  let vh = toHeads(v);
  if (ctx.cache?.k) {
    kh = tf.concat([ctx.cache.k as tf.Tensor4D, kh], 2);
    vh = tf.concat([ctx.cache.v as tf.Tensor4D, vh], 2);
  }
  const o = causalAttention(ropeHeads(q), kh, vh, ctx.keyBias);
  const out = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, t, heads * d]) as tf.Tensor3D;
  return ctx.useCache ? { out, cache: { k: kh, v: vh } } : { out };
}
