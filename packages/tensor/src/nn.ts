import { attentionCoreRecomputes, fusedAttentionFor, fusedFor } from './fused.js';
import { linearHookOf } from './linear-hooks.js';
import { tf } from './tf.js';

/**
 * x · Wᵀ for x [..., in] and a PyTorch-layout weight W [out, in] (no bias); inside `withLinearHooks`, a weight's hook
 * (an adapter) computes the output instead, with this product as its `base`.
 */
export function linear(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  const hook = linearHookOf(weight);
  return hook ? hook(x, (v) => plainLinear(v, weight)) : plainLinear(x, weight);
}

function plainLinear(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  const inner = x.shape[x.shape.length - 1];
  const lead = x.shape.slice(0, -1);
  const y = tf.matMul(x.reshape([-1, inner]), weight as tf.Tensor2D, false, true);
  return y.reshape([...lead, weight.shape[0]]);
}

/** RMSNorm over the last axis: w ⊙ x / sqrt(mean(x²) + eps). */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const f = fusedFor(x);
  if (f) return f.rmsNorm(x, weight, eps);
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight);
  });
}

/** SwiGLU MLP with YUAN's fused layout: W_upGate [2F, H] whose first half gets the SiLU; W_down [H, F]. */
export function swiglu(x: tf.Tensor, upGate: tf.Tensor, down: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const y = linear(x, upGate);
    const f = fusedFor(y);
    if (f) return linear(f.swigluActivation(y), down);
    const [a, g] = tf.split(y, 2, -1);
    return linear(tf.mul(tf.mul(a, tf.sigmoid(a)), g), down);
  });
}

/** Cosine and sine tables of rotary embeddings for positions [B, T], each [B, T, 1, headDim] (rotate-half layout). */
export function ropeTables(
  positions: tf.Tensor2D,
  headDim: number,
  base: number,
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  return tf.tidy(() => {
    const half = headDim / 2;
    const inv = new Float32Array(half);
    for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(base, (2 * i) / headDim);
    const angles = tf.mul(tf.expandDims(tf.cast(positions, 'float32'), -1), tf.tensor1d(inv)); // [B, T, half]
    const full = tf.concat([angles, angles], -1).expandDims(2) as tf.Tensor4D; // [B, T, 1, d]
    return { cos: tf.cos(full), sin: tf.sin(full) };
  });
}

/** Applies rotary embeddings to x [B, T, heads, d]: x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, -1);
    const rotated = tf.concat([tf.neg(x2), x1], -1);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  });
}

const maskCache = new Map<string, tf.Tensor2D>();

function causalMask(queries: number, keys: number, offset: number): tf.Tensor2D {
  const key = `${queries}:${keys}:${offset}`;
  let mask = maskCache.get(key);
  if (!mask) {
    const data = new Float32Array(queries * keys);
    for (let i = 0; i < queries; i++) for (let j = i + offset + 1; j < keys; j++) data[i * keys + j] = -1e9;
    mask = tf.keep(tf.tensor2d(data, [queries, keys]));
    if (maskCache.size > 64) {
      const [oldest] = maskCache.keys();
      maskCache.get(oldest)!.dispose();
      maskCache.delete(oldest);
    }
    maskCache.set(key, mask);
  }
  return mask;
}

/**
 * Causal scaled dot-product attention, the one entry every attention plugin's core goes through. q [B, heads, Tq, d];
 * k, v [B, heads, Tk, d]; query i sits at absolute position `Tk − Tq + i` and sees keys 0..that position. `keyBias`
 * [B, 1, 1, Tk] (optional) is added to the scores (padding masks). Returns [B, heads, Tq, d]. On a backend with a fused
 * kernel (`native`: FlashAttention-2, memory linear in T) it runs as one kernel forward and one backward; elsewhere,
 * or after `setFusedAttention(false)`, as tfjs ops that hold the [B, heads, Tq, Tk] scores (the reference).
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyBias?: tf.Tensor4D): tf.Tensor4D {
  const fused = fusedAttentionFor(q);
  if (fused) return fused(q, k, v, { scale: 1 / Math.sqrt(q.shape[3]), keyBias });
  if (attentionCoreRecomputes() && !keyBias) return recomputedAttention(q, k, v);
  return composedAttention(q, k, v, keyBias);
}

/**
 * The op-by-op attention core under selective recompute: keeps only q, k, v and runs the core again inside its
 * backward (Megatron's `--recompute-granularity selective`), so no [B, heads, Tq, Tk] tensor lives between them.
 */
function recomputedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  const core = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    composedAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[3] as tf.GradSaveFunc;
    const [qi, ki, vi] = args.slice(0, 3) as tf.Tensor[];
    save([qi, ki, vi]);
    return {
      value: core(qi, ki, vi),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.grads(core)(saved, dy),
    };
  });
  return op(q, k, v) as tf.Tensor4D;
}

function composedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyBias?: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, , tq, d] = q.shape;
    const tk = k.shape[2];
    const raw = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
    const scores = keyBias ? tf.add(raw, keyBias) : raw;
    // a single query (a generation step) is the newest position and sees every key: no mask to build
    const weights = tf.softmax(tq === 1 ? scores : tf.add(scores, causalMask(tq, tk, tk - tq)));
    return tf.matMul(weights, v) as tf.Tensor4D;
  });
}

/**
 * Causal 1-D convolution over time with a PyTorch Conv2d weight [out, in, K, 1] and bias [out]: y_t = b + Σ_k W_k·x_{t−K+1+k}.
 * x is [B, T, in]; `history` [B, K−1, in] holds the states before x (zeros when absent, as in training). Computed as one
 * matMul of the K shifted inputs interleaved per channel ([B, T, in·K]) with the weight viewed as [out, in·K]; inside
 * `withLinearHooks`, a hook on `weight` (the 4-D tensor) computes that product instead, as `linear`'s hooks do.
 */
export function causalConv1d(
  x: tf.Tensor3D,
  weight: tf.Tensor,
  bias: tf.Tensor | undefined,
  history?: tf.Tensor3D,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t, cin] = x.shape;
    const [cout, , kernel] = weight.shape;
    const past = history ?? (kernel > 1 ? tf.zeros([b, kernel - 1, cin]) : undefined);
    const padded = past ? tf.concat([past, x], 1) : x;
    const shifted = Array.from({ length: kernel }, (_, k) => tf.slice(padded, [0, k, 0], [b, t, cin]));
    const stacked = kernel === 1 ? shifted[0] : tf.reshape(tf.stack(shifted, 3), [b, t, cin * kernel]);
    // the product over the weight viewed as [out, in·K]; a hook on the Conv2d weight itself (GPTQ's calibration, a
    // packed base) sees the stacked input [B, T, in·K]
    const hook = linearHookOf(weight);
    const product = (v: tf.Tensor) => plainLinear(v, tf.reshape(weight, [cout, cin * kernel]));
    const y = hook ? hook(stacked, product) : product(stacked);
    return (bias ? tf.add(y, bias) : y) as tf.Tensor3D;
  });
}
