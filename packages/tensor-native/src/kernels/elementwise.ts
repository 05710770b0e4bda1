import { backend_util } from '@tensorflow/tfjs';
import type { NativeKernel } from './types.js';
import { f32, sizeOf, stridesOf } from './util.js';

// Op codes of csrc/kernels.h.
const BINARY = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6 } as const;
const COMPARE = { Equal: 0, NotEqual: 1, Less: 2, LessEqual: 3, Greater: 4, GreaterEqual: 5 } as const;
const UNARY = {
  Neg: 0,
  Exp: 1,
  Log: 2,
  Sqrt: 3,
  Rsqrt: 4,
  Square: 5,
  Sigmoid: 6,
  Tanh: 7,
  Relu: 8,
  Reciprocal: 9,
  Abs: 10,
  Cos: 11,
  Sin: 12,
} as const;

/** Per-output-dim element strides of an operand broadcast to `out` (0 on broadcast dims). */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = stridesOf(shape);
  const offset = out.length - shape.length;
  return out.map((_, d) => (d < offset || shape[d - offset] === 1 ? 0 : own[d - offset]));
}

/** Merges neighbouring dims that both operands walk contiguously (or both skip), so the inner loop is long. */
function collapse(shape: number[], as: number[], bs: number[]): [number[], number[], number[]] {
  const s: number[] = [];
  const a: number[] = [];
  const b: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && as[d] * shape[d] === a[last] && bs[d] * shape[d] === b[last]) {
      s[last] *= shape[d];
      a[last] = as[d];
      b[last] = bs[d];
    } else {
      s.push(shape[d]);
      a.push(as[d]);
      b.push(bs[d]);
    }
  }
  return [s, a, b];
}

/** A broadcasting binary kernel; comparisons give bool (0/1 bytes), the rest float32. */
function binaryKernel(op: number, comparison: boolean): NativeKernel {
  return ({ inputs, backend }, addon) => {
    const { a, b } = inputs;
    const av = f32(backend, a);
    const bv = f32(backend, b);
    if (!av || !bv) return undefined;
    const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = sizeOf(outShape);
    const out = comparison ? new Uint8Array(n) : backend.alloc(n);
    if (n > 0) {
      const [s, sa, sb] = collapse(outShape, broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape));
      const dims = [Int32Array.from(s), Int32Array.from(sa), Int32Array.from(sb)] as const;
      if (out instanceof Uint8Array) addon.compare(op, av, bv, out, ...dims);
      else addon.binary(op, av, bv, out, ...dims);
    }
    return backend.makeTensorInfo(outShape, comparison ? 'bool' : 'float32', out);
  };
}

function unaryKernel(op: number): NativeKernel {
  return ({ inputs, backend }, addon) => {
    const x = inputs.x;
    const xv = f32(backend, x);
    if (!xv) return undefined;
    const out = backend.alloc(xv.length);
    addon.unary(op, xv, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };
}

const addN: NativeKernel = ({ inputs, backend }, addon) => {
  const tensors = Object.values(inputs);
  const arrays = tensors.map((t) => f32(backend, t));
  if (tensors.length === 0 || arrays.some((v) => !v || v.length !== arrays[0]!.length)) return undefined;
  const out = backend.alloc(arrays[0]!.length);
  addon.addN(arrays as Float32Array[], out);
  return backend.makeTensorInfo(tensors[0].shape, 'float32', out);
};

/** Native elementwise kernels by tfjs kernel name. */
export const elementwiseKernels: Record<string, NativeKernel> = {
  ...Object.fromEntries(Object.entries(BINARY).map(([name, op]) => [name, binaryKernel(op, false)])),
  ...Object.fromEntries(Object.entries(COMPARE).map(([name, op]) => [name, binaryKernel(op, true)])),
  ...Object.fromEntries(Object.entries(UNARY).map(([name, op]) => [name, unaryKernel(op)])),
  AddN: addN,
};
