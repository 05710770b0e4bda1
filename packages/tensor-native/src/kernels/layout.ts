import { slice_util, util } from '@tensorflow/tfjs';
import type { NativeKernel } from './types.js';
import { f32, i32, sizeOf } from './util.js';

const transpose: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  if (!xv) return undefined;
  const perm = attrs.perm as number[];
  const out = new Float32Array(xv.length);
  if (out.length > 0) addon.transpose(xv, out, Int32Array.from(x.shape), Int32Array.from(perm));
  return backend.makeTensorInfo(perm.map((p) => x.shape[p]), 'float32', out);
};

const slice: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  if (!xv || x.shape.length === 0 || x.shape.length > 8) return undefined;
  const [begin, size] = slice_util.parseSliceParams(x, attrs.begin as number | number[], attrs.size as number | number[]);
  slice_util.assertParamsValid(x, begin, size);
  const out = new Float32Array(sizeOf(size));
  if (out.length > 0) addon.slice(xv, out, Int32Array.from(x.shape), Int32Array.from(begin), Int32Array.from(size));
  return backend.makeTensorInfo(size, 'float32', out);
};

const gatherV2: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const { x, indices } = inputs;
  const xv = f32(backend, x);
  const iv = i32(backend, indices);
  if (!xv || !iv || Number(attrs.batchDims ?? 0) !== 0) return undefined;
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  const out = new Float32Array(sizeOf(shape));
  // An index out of range: the cpu kernel reports it with tfjs's own message.
  if (!addon.gather(xv, iv, out, outer, x.shape[axis], inner)) return undefined;
  return backend.makeTensorInfo(shape, 'float32', out);
};

const unsortedSegmentSum: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const { x, segmentIds } = inputs;
  const xv = f32(backend, x);
  const sv = i32(backend, segmentIds);
  const segments = Number(attrs.numSegments);
  const lead = segmentIds.shape.length;
  if (!xv || !sv || !x.shape.slice(0, lead).every((d, i) => d === segmentIds.shape[i])) return undefined;
  const tail = x.shape.slice(lead);
  const out = new Float32Array(segments * sizeOf(tail));
  addon.segmentSum(xv, sv, out, segments, sizeOf(tail));
  return backend.makeTensorInfo([segments, ...tail], 'float32', out);
};

/** Native data-movement kernels by tfjs kernel name. */
export const layoutKernels: Record<string, NativeKernel> = {
  Transpose: transpose,
  Slice: slice,
  GatherV2: gatherV2,
  UnsortedSegmentSum: unsortedSegmentSum,
};
