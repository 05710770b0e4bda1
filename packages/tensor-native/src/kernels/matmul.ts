import { backend_util } from '@tensorflow/tfjs';
import type { NativeKernel } from './types.js';
import { f32, sizeOf, stridesOf } from './util.js';

/** Index of each output batch's operand matrix under broadcasting of the batch dims. */
function batchIndices(batch: number[], outBatch: number[]): Int32Array {
  const out = new Int32Array(sizeOf(outBatch));
  const offset = outBatch.length - batch.length;
  const strides = stridesOf(batch);
  const outStrides = stridesOf(outBatch);
  for (let i = 0; i < out.length; i++) {
    let idx = 0;
    for (let d = 0; d < batch.length; d++) {
      const coord = Math.floor(i / outStrides[d + offset]) % outBatch[d + offset];
      if (batch[d] !== 1) idx += coord * strides[d];
    }
    out[i] = idx;
  }
  return out;
}

/** BatchMatMul on cblas_sgemm: transposes as BLAS flags, batch dims broadcast, one GEMM when the right side is shared. */
export const batchMatMul: NativeKernel = ({ inputs, backend, attrs }, addon) => {
  const { a, b } = inputs;
  const transposeA = Boolean(attrs.transposeA);
  const transposeB = Boolean(attrs.transposeB);
  const av = f32(backend, a);
  const bv = f32(backend, b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const k2 = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== k2) return undefined; // the cpu kernel throws tfjs's own error message
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const outBatch = backend_util.assertAndGetBroadcastShape(batchA, batchB);
  const out = backend.alloc(sizeOf(outBatch) * m * n, k === 0);
  if (out.length > 0 && k > 0)
    addon.gemm(
      av,
      bv,
      out,
      batchIndices(batchA, outBatch),
      batchIndices(batchB, outBatch),
      m,
      n,
      k,
      transposeA,
      transposeB,
    );
  return backend.makeTensorInfo([...outBatch, m, n], 'float32', out);
};
