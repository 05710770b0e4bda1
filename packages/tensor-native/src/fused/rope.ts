import type { NativeAddon } from '../addon.js';
import type { NativeKernel } from '../kernels/types.js';
import { f32 } from '../kernels/util.js';
import { tf } from '../tf.js';

const FORWARD = 'YuanRopeHeads';
const BACKWARD = 'YuanRopeHeadsGrad';

/** [B, T, H, d] of x and the batch rows of cos/sin (1 or B), checked against cos/sin [1 or B, T, 1, d]. */
function dims(name: string, x: tf.TensorInfo, cos: tf.TensorInfo, sin: tf.TensorInfo): number[] {
  const [b, t, h, d] = x.shape;
  const ok =
    x.shape.length === 4 &&
    d % 2 === 0 &&
    cos.shape.length === 4 &&
    (cos.shape[0] === 1 || cos.shape[0] === b) &&
    cos.shape[1] === t &&
    cos.shape[2] === 1 &&
    cos.shape[3] === d &&
    sin.shape.join() === cos.shape.join();
  if (!ok)
    throw new Error(
      `${name}: x [B, T, H, d] with d even and cos, sin [1 or B, T, 1, d] (got [${x.shape}], [${cos.shape}], [${sin.shape}])`,
    );
  return [b, t, h, d];
}

const forward: NativeKernel = ({ inputs, backend }, addon: NativeAddon) => {
  const { x, cos, sin } = inputs;
  const [b, t, h, d] = dims(FORWARD, x, cos, sin);
  const [xv, cv, sv] = [x, cos, sin].map((v) => f32(backend, v));
  if (!xv || !cv || !sv) throw new Error(`${FORWARD}: inputs must be float32`);
  const out = backend.alloc(xv.length);
  addon.ropeHeads(xv, cv, sv, out, b, t, h, d);
  return backend.makeTensorInfo([b, h, t, d], 'float32', out);
};

const backward: NativeKernel = ({ inputs, backend }, addon: NativeAddon) => {
  const { x, cos, sin, dy } = inputs;
  const [b, t, h, d] = dims(BACKWARD, x, cos, sin);
  const [xv, cv, sv, gv] = [x, cos, sin, dy].map((v) => f32(backend, v));
  if (!xv || !cv || !sv || !gv || dy.shape.join() !== [b, h, t, d].join())
    throw new Error(`${BACKWARD}: float32 inputs and dy [B, H, T, d] (got [${dy.shape}])`);
  const dx = backend.alloc(xv.length);
  const dcos = backend.alloc(cv.length);
  const dsin = backend.alloc(sv.length);
  addon.ropeHeadsGrad(xv, cv, sv, gv, dx, dcos, dsin, b, t, h, d);
  return [
    backend.makeTensorInfo(x.shape, 'float32', dx),
    backend.makeTensorInfo(cos.shape, 'float32', dcos),
    backend.makeTensorInfo(sin.shape, 'float32', dsin),
  ];
};

/** The fused rotary-embedding kernels by name (registered for the native backend only). */
export const ropeKernels: Record<string, NativeKernel> = { [FORWARD]: forward, [BACKWARD]: backward };

/**
 * Rotary embeddings moved to head-major layout: for x [B, T, H, d] and cos, sin [1 or B, T, 1, d] (the tables of
 * `ropeTables` in @yuan/tensor), returns [B, H, T, d] = transpose(x ⊙ cos + rotate_half(x) ⊙ sin, [0, 2, 1, 3]) with
 * rotate_half([x₁ | x₂]) = [−x₂ | x₁] (RoFormer, arXiv 2104.09864, eq. 34, in the rotate-half layout of HF Llama).
 * One native kernel forward and one backward on the native backend instead of split, neg, concat, two multiplies,
 * an add and a transpose, and their gradients; gradients flow to x, cos and sin. Throws on another backend or dtype,
 * and on shapes other than these (one line naming them).
 */
export function ropeHeads(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  if (tf.getBackend() !== 'native' || x.dtype !== 'float32')
    throw new Error(
      'ropeHeads needs the native backend with float32 tensors (@yuan/tensor falls back to its own ops elsewhere)',
    );
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, c, s, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xs, c, s]);
    return {
      value: tf.engine().runKernel(FORWARD, { x: xs, cos: c, sin: s }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sc, ss] = saved;
        return tf.engine().runKernel(BACKWARD, { x: sx, cos: sc, sin: ss, dy }) as tf.Tensor[];
      },
    };
  });
  return op(x, cos, sin) as tf.Tensor4D;
}
