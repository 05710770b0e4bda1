import type { TensorInfo } from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

/**
 * The Float32Array a float32 tensor lives in on a cpu-style backend (a float32 copy when the cpu backend kept another
 * array type, as its bool-to-float32 Cast does), or undefined (other dtypes, complex, strings).
 */
export function f32(backend: MathBackendCPU, t: TensorInfo): Float32Array | undefined {
  if (t.dtype !== 'float32') return undefined;
  const v = backend.data.get(t.dataId).values;
  if (v instanceof Float32Array) return v;
  return ArrayBuffer.isView(v) && !(v instanceof DataView) ? Float32Array.from(v as Uint8Array) : undefined;
}

/** The Int32Array an int32 tensor lives in, or undefined. */
export function i32(backend: MathBackendCPU, t: TensorInfo): Int32Array | undefined {
  if (t.dtype !== 'int32') return undefined;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Int32Array ? v : undefined;
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major element strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}
