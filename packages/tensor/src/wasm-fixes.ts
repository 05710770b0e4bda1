import { tf } from './tf.js';

/* The wasm backend lacks some kernels that training needs and runs transposed matMuls ~15x slower than plain ones.
   These patches make it complete and fast; they are applied once, when wasm is selected. */

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  backend: WasmBackendLike;
  attrs?: Record<string, unknown>;
}

interface WasmBackendLike {
  readSync(dataId: tf.DataId): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

let patched = false;

function swapLastTwo(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

interface WasmStorage {
  dataIdMap: { has(dataId: tf.DataId): boolean };
}

/**
 * Transposed copies of matrices that are used transposed more than once (weights in x·Wᵀ during generation), keyed
 * by the source data (tensor data is immutable, so a copy stays valid while its source lives) and shape. Entries whose
 * source was disposed are freed on the next call; the table holds at most MAX_CACHED copies.
 */
const MAX_CACHED = 512;
const transposed = new Map<tf.DataId, Map<string, tf.TensorInfo>>();
const seen = new WeakSet<object>();

function evictDead(backend: WasmBackendLike & WasmStorage): void {
  for (const [source, byShape] of transposed) {
    if (backend.dataIdMap.has(source)) continue;
    for (const t of byShape.values()) backend.disposeData(t.dataId);
    transposed.delete(source);
  }
}

/** BatchMatMul with transposes done by an explicit (and, for repeated operands, cached) Transpose: an order of magnitude faster on wasm. */
function patchBatchMatMul(): void {
  const original = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!original || !transpose) return;
  const run = original.kernelFunc as unknown as KernelFn;
  const runTranspose = transpose.kernelFunc as unknown as KernelFn;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: original.setupFunc,
    kernelFunc: ((args: KernelArgs) => {
      const backend = args.backend as WasmBackendLike & WasmStorage;
      const { a, b } = args.inputs;
      const attrs = args.attrs ?? {};
      const temps: tf.TensorInfo[] = [];
      if (transposed.size) evictDead(backend);
      const flip = (t: tf.TensorInfo, yes: unknown): tf.TensorInfo => {
        if (!yes) return t;
        const shapeKey = t.shape.join(',');
        const hit = transposed.get(t.dataId)?.get(shapeKey);
        if (hit) return hit;
        const out = runTranspose({
          inputs: { x: t },
          backend,
          attrs: { perm: swapLastTwo(t.shape.length) },
        }) as tf.TensorInfo;
        const key = t.dataId as object;
        if (seen.has(key) && transposed.size < MAX_CACHED) {
          if (!transposed.has(t.dataId)) transposed.set(t.dataId, new Map());
          transposed.get(t.dataId)!.set(shapeKey, out);
        } else {
          seen.add(key);
          temps.push(out);
        }
        return out;
      };
      const result = run({
        inputs: { a: flip(a, attrs.transposeA), b: flip(b, attrs.transposeB) },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
      for (const t of temps) backend.disposeData(t.dataId);
      return result;
    }) as unknown as tf.KernelFunc,
  });
}

/** UnsortedSegmentSum (needed by the gradient of gather, i.e. of embeddings) computed in JS on wasm memory. */
function registerUnsortedSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ((args: KernelArgs) => {
      const { x, segmentIds } = args.inputs;
      const numSegments = args.attrs!.numSegments as number;
      const values = args.backend.readSync(x.dataId);
      const ids = args.backend.readSync(segmentIds.dataId);
      const inner = x.shape.slice(segmentIds.shape.length).reduce((p, d) => p * d, 1);
      const out = args.backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
      const dst = args.backend.typedArrayFromHeap(out);
      dst.fill(0);
      for (let i = 0; i < ids.length; i++) {
        const seg = ids[i];
        if (seg < 0 || seg >= numSegments) continue;
        const src = i * inner;
        const base = seg * inner;
        for (let j = 0; j < inner; j++) dst[base + j] += values[src + j];
      }
      return out;
    }) as unknown as tf.KernelFunc,
  });
}

/** Makes the wasm backend able to train every yuan model and fast at transposed matMuls; idempotent. */
export function patchWasmBackend(): void {
  if (patched) return;
  patched = true;
  patchBatchMatMul();
  registerUnsortedSegmentSum();
}
