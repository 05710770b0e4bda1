import type { NativeAddon } from '../addon.js';
import type { NativeKernel } from '../kernels/types.js';
import { f32 } from '../kernels/util.js';
import { tf } from '../tf.js';

const FORWARD = 'YuanSwiglu';
const BACKWARD = 'YuanSwigluGrad';

const forward: NativeKernel = ({ inputs, backend }, addon: NativeAddon) => {
  const u = inputs.u;
  const uv = f32(backend, u);
  const f = u.shape[u.shape.length - 1] / 2;
  if (!uv || !Number.isInteger(f) || f === 0)
    throw new Error(`${FORWARD}: u [..., 2f] must be float32 with an even last dim (got [${u.shape}])`);
  const out = backend.alloc(uv.length / 2);
  addon.swiglu(uv, out, f);
  return backend.makeTensorInfo([...u.shape.slice(0, -1), f], 'float32', out);
};

const backward: NativeKernel = ({ inputs, backend }, addon: NativeAddon) => {
  const { u, dy } = inputs;
  const uv = f32(backend, u);
  const gv = f32(backend, dy);
  if (!uv || !gv) throw new Error(`${BACKWARD}: inputs must be float32`);
  const du = backend.alloc(uv.length);
  addon.swigluGrad(uv, gv, du, u.shape[u.shape.length - 1] / 2);
  return backend.makeTensorInfo(u.shape, 'float32', du);
};

/** The fused SwiGLU kernels by name (registered for the native backend only). */
export const swigluKernels: Record<string, NativeKernel> = { [FORWARD]: forward, [BACKWARD]: backward };

/**
 * The SwiGLU activation of YUAN's fused up-gate output u [..., 2F] = [a | g]: silu(a) ⊙ g, [..., F]. One native
 * kernel forward and one backward on the native backend (instead of split, sigmoid, two multiplies and their
 * gradients). The composite lives once, in @yuan/tensor, which calls this only while the native backend is active.
 * Throws on another backend or dtype.
 */
export function swigluActivation(u: tf.Tensor): tf.Tensor {
  if (tf.getBackend() !== 'native' || u.dtype !== 'float32')
    throw new Error(
      'swigluActivation needs the native backend with float32 tensors (@yuan/tensor falls back to its own ops elsewhere)',
    );
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([x]);
    return {
      value: tf.engine().runKernel(FORWARD, { u: x }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.engine().runKernel(BACKWARD, { u: saved[0], dy }) as tf.Tensor,
      ],
    };
  });
  return op(u);
}
