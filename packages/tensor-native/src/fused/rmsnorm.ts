import type { NativeAddon } from '../addon.js';
import type { NativeKernel } from '../kernels/types.js';
import { f32 } from '../kernels/util.js';
import { tf } from '../tf.js';

const FORWARD = 'YuanRmsNorm';
const BACKWARD = 'YuanRmsNormGrad';

const forward: NativeKernel = ({ inputs, backend, attrs }, addon: NativeAddon) => {
  const { x, weight } = inputs;
  const xv = f32(backend, x);
  const wv = f32(backend, weight);
  const d = x.shape[x.shape.length - 1];
  if (!xv || !wv || wv.length !== d)
    throw new Error(`${FORWARD}: x [..., d] and weight [d] must be float32 (got [${x.shape}] and [${weight.shape}])`);
  const out = backend.alloc(xv.length);
  const inv = backend.alloc(xv.length / d);
  addon.rmsNorm(xv, wv, Number(attrs.eps), out, inv);
  return [
    backend.makeTensorInfo(x.shape, 'float32', out),
    backend.makeTensorInfo(x.shape.slice(0, -1), 'float32', inv),
  ];
};

const backward: NativeKernel = ({ inputs, backend }, addon: NativeAddon) => {
  const { x, weight, inv, dy } = inputs;
  const [xv, wv, iv, gv] = [x, weight, inv, dy].map((t) => f32(backend, t));
  if (!xv || !wv || !iv || !gv) throw new Error(`${BACKWARD}: inputs must be float32`);
  const dx = backend.alloc(xv.length);
  const dw = backend.alloc(wv.length);
  addon.rmsNormGrad(xv, wv, iv, gv, dx, dw);
  return [backend.makeTensorInfo(x.shape, 'float32', dx), backend.makeTensorInfo(weight.shape, 'float32', dw)];
};

/** The fused RMSNorm kernels by name (registered for the native backend only). */
export const rmsNormKernels: Record<string, NativeKernel> = { [FORWARD]: forward, [BACKWARD]: backward };

/**
 * RMSNorm over the last axis, w ⊙ x / sqrt(mean(x²) + eps), for x [..., d] and weight [d]: one native kernel forward
 * and one backward on the native backend (instead of about 6 + 15 tfjs ops). The composite lives once, in @yuan/tensor,
 * which calls this only while the native backend is active. Throws on another backend or dtype.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  if (tf.getBackend() !== 'native' || x.dtype !== 'float32')
    throw new Error(
      'rmsNorm needs the native backend with float32 tensors (@yuan/tensor falls back to its own ops elsewhere)',
    );
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [y, inv] = tf.engine().runKernel(FORWARD, { x: xs, weight: w }, { eps }) as tf.Tensor[];
    save([xs, w, inv]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw, sinv] = saved;
        return tf.engine().runKernel(BACKWARD, { x: sx, weight: sw, inv: sinv, dy }) as tf.Tensor[];
      },
    };
  });
  return op(x, weight);
}
