import { backend_util, slice_util, util, type Tensor, type TensorInfo } from '@tensorflow/tfjs';
import type { NativeAddon } from '../addon.js';
import type { KernelArgs, NativeKernel } from './types.js';
import { f32, i32, sizeOf } from './util.js';

const transpose: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  if (!xv) return undefined;
  const perm = attrs.perm as number[];
  const out = backend.alloc(xv.length);
  if (out.length > 0) addon.transpose(xv, out, Int32Array.from(x.shape), Int32Array.from(perm));
  return backend.makeTensorInfo(
    perm.map((p) => x.shape[p]),
    'float32',
    out,
  );
};

/** Copies the box `size` at srcBegin of src into dst at dstBegin. */
function copy(
  addon: NativeAddon,
  src: Float32Array,
  srcShape: number[],
  srcBegin: number[],
  dst: Float32Array,
  dstShape: number[],
  dstBegin: number[],
  size: number[],
): void {
  if (sizeOf(size) === 0) return;
  addon.copyBox(
    src,
    Int32Array.from(srcShape),
    Int32Array.from(srcBegin),
    dst,
    Int32Array.from(dstShape),
    Int32Array.from(dstBegin),
    Int32Array.from(size),
  );
}

const slice: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  if (!xv || x.shape.length === 0 || x.shape.length > 8) return undefined;
  const [begin, size] = slice_util.parseSliceParams(
    x,
    attrs.begin as number | number[],
    attrs.size as number | number[],
  );
  slice_util.assertParamsValid(x, begin, size);
  const out = backend.alloc(sizeOf(size));
  copy(
    addon,
    xv,
    x.shape,
    begin,
    out,
    size,
    size.map(() => 0),
    size,
  );
  return backend.makeTensorInfo(size, 'float32', out);
};

const splitV: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  if (!xv || x.shape.length > 8) return undefined;
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = backend_util.prepareSplitSize(x as unknown as Tensor, attrs.numOrSizeSplits as number | number[], axis);
  let offset = 0;
  return sizes.map((n) => {
    const shape = x.shape.slice();
    shape[axis] = n;
    const out = backend.alloc(sizeOf(shape));
    const begin = x.shape.map((_, d) => (d === axis ? offset : 0));
    copy(
      addon,
      xv,
      x.shape,
      begin,
      out,
      shape,
      shape.map(() => 0),
      shape,
    );
    offset += n;
    return backend.makeTensorInfo(shape, 'float32', out);
  });
};

const unpack: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const value = inputs.value;
  const xv = f32(backend, value);
  if (!xv || value.shape.length > 8) return undefined;
  const axis = util.parseAxisParam(attrs.axis as number, value.shape)[0];
  const box = value.shape.slice();
  box[axis] = 1;
  const outShape = value.shape.filter((_, d) => d !== axis);
  return Array.from({ length: value.shape[axis] }, (_, i) => {
    const out = backend.alloc(sizeOf(outShape));
    copy(
      addon,
      xv,
      value.shape,
      value.shape.map((_, d) => (d === axis ? i : 0)),
      out,
      box,
      box.map(() => 0),
      box,
    );
    return backend.makeTensorInfo(outShape, 'float32', out);
  });
};

/** Concatenation along `axis` of float32 tensors of equal rank; `expand` inserts a unit axis first (Pack). */
function join(
  backend: KernelArgs['backend'],
  addon: NativeAddon,
  tensors: TensorInfo[],
  axis: number,
  expand: boolean,
): TensorInfo | undefined {
  const arrays = tensors.map((t) => f32(backend, t));
  if (tensors.length === 0 || arrays.some((a) => !a)) return undefined;
  const shapes = tensors.map((t) => (expand ? [...t.shape.slice(0, axis), 1, ...t.shape.slice(axis)] : t.shape));
  const rank = shapes[0].length;
  if (
    rank === 0 ||
    rank > 8 ||
    shapes.some((s) => s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i]))
  )
    return undefined;
  const outShape = shapes[0].slice();
  outShape[axis] = shapes.reduce((n, s) => n + s[axis], 0);
  const out = backend.alloc(sizeOf(outShape));
  let offset = 0;
  shapes.forEach((s, i) => {
    copy(
      addon,
      arrays[i]!,
      s,
      s.map(() => 0),
      out,
      outShape,
      outShape.map((_, d) => (d === axis ? offset : 0)),
      s,
    );
    offset += s[axis];
  });
  return backend.makeTensorInfo(outShape, 'float32', out);
}

const concat: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const tensors = Object.values(inputs);
  if (tensors.length === 0) return undefined;
  return join(backend, addon, tensors, util.parseAxisParam(attrs.axis as number, tensors[0].shape)[0], false);
};

const pack: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const tensors = Object.values(inputs);
  if (tensors.length === 0) return undefined;
  const rank = tensors[0].shape.length + 1;
  const axis = ((attrs.axis as number) + rank) % rank;
  return join(backend, addon, tensors, axis, true);
};

const padV2: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const x = inputs.x;
  const xv = f32(backend, x);
  const paddings = attrs.paddings as [number, number][];
  if (!xv || x.shape.length === 0 || x.shape.length > 8) return undefined;
  const outShape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
  const value = Number(attrs.constantValue ?? 0);
  const out = backend.alloc(sizeOf(outShape), value === 0);
  if (value !== 0) addon.fill(out, value);
  copy(
    addon,
    xv,
    x.shape,
    x.shape.map(() => 0),
    out,
    outShape,
    paddings.map((p) => p[0]),
    x.shape,
  );
  return backend.makeTensorInfo(outShape, 'float32', out);
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
  const out = backend.alloc(sizeOf(shape));
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
  const out = backend.alloc(segments * sizeOf(tail));
  addon.segmentSum(xv, sv, out, segments, sizeOf(tail));
  return backend.makeTensorInfo([segments, ...tail], 'float32', out);
};

/** Native data-movement kernels by tfjs kernel name. */
export const layoutKernels: Record<string, NativeKernel> = {
  Transpose: transpose,
  Slice: slice,
  SplitV: splitV,
  Unpack: unpack,
  Concat: concat,
  Pack: pack,
  PadV2: padV2,
  GatherV2: gatherV2,
  UnsortedSegmentSum: unsortedSegmentSum,
};
