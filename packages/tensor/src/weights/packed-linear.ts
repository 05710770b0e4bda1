import { YuanError } from '@yuan/core';
import { tf } from '../tf.js';
import type { StoredWeight } from './formats.js';
import { decodeKernels, type DecodeKernels } from './kernels.js';

/**
 * x · Wᵀ for a frozen linear weight held in its storage format (QLoRA's frozen base): W is the row concatenation of
 * `parts` (each [outᵢ, in]: a fused weight's pieces, e.g. q_proj and k_proj), so the result [..., Σ outᵢ] is each part's
 * product side by side. The forward runs each format's own product on the packed data (the native weight kernels
 * when `loadDecodeKernels` found them: bf16 widened on the fly, int8/int4 integer dot products against quantized
 * activations); without them W is dequantized for the product. The backward gives x its gradient dy · W: with the
 * native kernels each part's `gradInput` (W dequantized or widened in tiles of 64 inputs feeding BLAS, never all of W
 * in fp32), else W dequantized to fp32 one part at a time and freed at once (bitsandbytes' QLoRA does the same in
 * bf16); W gets none.
 * Errors: parts of different input sizes, or x whose last axis is not their input size.
 */
export function packedLinear(x: tf.Tensor, parts: readonly StoredWeight[]): tf.Tensor {
  if (!parts.length) throw new YuanError('input', 'packedLinear: no weight parts');
  const inF = parts[0].in;
  if (parts.some((p) => p.in !== inF))
    throw new YuanError('input', `packedLinear: parts of input sizes ${parts.map((p) => p.in).join(', ')}`);
  const lead = x.shape.slice(0, -1);
  if (x.shape[x.shape.length - 1] !== inF)
    throw new YuanError('input', `packedLinear: x has shape [${x.shape}], the weight's input size is ${inF}`);
  const out = parts.reduce((a, p) => a + p.out, 0);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xs = args[0] as tf.Tensor;
    const x2 = tf.reshape(xs, [-1, inF]) as tf.Tensor2D;
    const n = x2.shape[0];
    const kernels = decodeKernels();
    let y: tf.Tensor2D;
    if (kernels) {
      const data = x2.dataSync() as Float32Array;
      const ys = parts.map((p) => {
        const yp = new Float32Array(n * p.out);
        p.format.matmul(p, data, n, yp, kernels);
        return tf.tensor2d(yp, [n, p.out]);
      });
      y = ys.length === 1 ? ys[0] : (tf.concat(ys, 1) as tf.Tensor2D);
      if (ys.length > 1) tf.dispose(ys);
    } else {
      y = tf.tidy((): tf.Tensor2D => {
        const ys = parts.map((p): tf.Tensor2D => tf.matMul(x2, dequantized(p), false, true));
        return ys.length === 1 ? ys[0] : (tf.concat(ys, 1) as tf.Tensor2D);
      });
    }
    x2.dispose();
    const value = tf.reshape(y, [...lead, out]);
    y.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        const k = decodeKernels();
        if (k && parts.every((p) => p.format.gradInput)) return nativeGradInput(dy, parts, n, out, k, xs.shape);
        return tf.tidy(() => {
          const d2 = tf.reshape(dy, [-1, out]) as tf.Tensor2D;
          let at = 0;
          let dx: tf.Tensor2D | undefined;
          for (const p of parts) {
            const w = dequantized(p);
            const slice = parts.length === 1 ? d2 : tf.slice(d2, [0, at], [-1, p.out]);
            const term: tf.Tensor2D = tf.matMul(slice, w);
            w.dispose();
            dx = dx ? (tf.add(dx, term) as tf.Tensor2D) : term;
            at += p.out;
          }
          return tf.reshape(dx!, xs.shape);
        });
      },
    };
  });
  return f(x);
}

/** dx = dy · W by each part's native `gradInput`, summed over the parts: dy [n, Σ outᵢ] → dx shaped `shape`. */
function nativeGradInput(
  dy: tf.Tensor,
  parts: readonly StoredWeight[],
  n: number,
  out: number,
  k: DecodeKernels,
  shape: number[],
): tf.Tensor {
  const inF = parts[0].in;
  const all = dy.dataSync() as Float32Array;
  const dx = new Float32Array(n * inF);
  const term = parts.length > 1 ? new Float32Array(n * inF) : dx;
  let at = 0;
  for (const [i, p] of parts.entries()) {
    let slice = all;
    if (parts.length > 1) {
      // this part's columns [at, at + outᵢ) of dy, contiguous
      slice = new Float32Array(n * p.out);
      for (let r = 0; r < n; r++) slice.set(all.subarray(r * out + at, r * out + at + p.out), r * p.out);
    }
    // the first part writes dx, the others are added to it
    p.format.gradInput!(p, slice, n, i === 0 ? dx : term, k);
    if (i > 0) for (let j = 0; j < dx.length; j++) dx[j] += term[j];
    at += p.out;
  }
  return tf.tensor(dx, shape);
}

/** W [out, in] in float32 (a fresh tensor the caller frees). */
function dequantized(p: StoredWeight): tf.Tensor2D {
  return tf.tensor2d(p.f32 ?? p.format.dequantize(p), [p.out, p.in]);
}
