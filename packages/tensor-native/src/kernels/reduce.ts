import { backend_util, util } from '@tensorflow/tfjs';
import type { NativeAddon } from '../addon.js';
import type { NativeKernel } from './types.js';
import { f32, sizeOf } from './util.js';

// Op codes of csrc/kernels.h.
const REDUCE = { Sum: 0, Max: 1, Min: 2, Mean: 3 } as const;

/** x with the given axes moved last (a native transpose when they are not already innermost). */
function axesLast(addon: NativeAddon, x: Float32Array, shape: number[], axes: number[]): Float32Array {
  const perm = backend_util.getAxesPermutation(axes, shape.length);
  if (!perm) return x;
  const out = new Float32Array(x.length);
  addon.transpose(x, out, Int32Array.from(shape), Int32Array.from(perm));
  return out;
}

function reduceKernel(op: number): NativeKernel {
  return ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x;
    const xv = f32(backend, x);
    if (!xv || xv.length === 0) return undefined;
    const axes = util.parseAxisParam((attrs.axis ?? attrs.reductionIndices) as number | number[], x.shape);
    const [outShape, reduceShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
    const inner = sizeOf(reduceShape);
    const out = backend.alloc(sizeOf(outShape));
    // Reducing the leading axes (the gradient of a broadcast, e.g. a [d] weight over [B, T, d]) needs no transpose.
    const leading = axes.length > 0 && [...axes].sort((p, q) => p - q).every((axis, i) => axis === i);
    if (leading && inner !== xv.length) addon.reduce(op, xv, out, inner, out.length, true);
    else addon.reduce(op, axesLast(addon, xv, x.shape, axes), out, out.length, inner);
    const shape = attrs.keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    return backend.makeTensorInfo(shape, 'float32', out);
  };
}

const softmax: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const logits = inputs.logits;
  const xv = f32(backend, logits);
  const rank = logits.shape.length;
  const dim = attrs.dim as number;
  if (!xv || xv.length === 0 || rank === 0 || (dim !== -1 && dim !== rank - 1)) return undefined;
  const cols = logits.shape[rank - 1];
  const out = backend.alloc(xv.length);
  addon.softmax(xv, out, xv.length / cols, cols);
  return backend.makeTensorInfo(logits.shape, 'float32', out);
};

/** Native reductions and softmax by tfjs kernel name. */
export const reduceKernels: Record<string, NativeKernel> = {
  ...Object.fromEntries(Object.entries(REDUCE).map(([name, op]) => [name, reduceKernel(op)])),
  Softmax: softmax,
};
