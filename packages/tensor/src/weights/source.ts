import { closeSync, openSync, readSync } from 'node:fs';
import { YuanError, type JsonObject } from '@yuan/core';
import { bf16ToFloat, halfToFloat } from '../half.js';
import { openSafetensors, type SafetensorsEntry } from '../safetensors.js';
import { decodeKernels } from './kernels.js';

/** One tensor of a checkpoint: where it lies and its raw bytes on demand. */
export interface SourceTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** The tensor's bytes (a view into a memory-mapped file, or a copy read from it). */
  bytes(): Uint8Array;
}

/**
 * The tensors of a checkpoint's safetensors files, by name, read without conversion: with the native addon each file
 * is memory-mapped (pages load on first touch, nothing is copied), otherwise each tensor is read when asked for.
 * `quantization` is config.json's `quantization_config`, if any.
 */
export interface WeightSource {
  readonly tensors: Map<string, SourceTensor>;
  readonly quantization?: JsonObject;
  /** The tensor of that name; a missing one is a one-line error. */
  get(name: string): SourceTensor;
  /** Float32 values of a F32, F16 or BF16 tensor (copied and widened). */
  floats(name: string): Float32Array;
}

/** Opens safetensors files as a WeightSource (headers validated by `openSafetensors`). */
export async function openWeightSource(files: readonly string[], quantization?: JsonObject): Promise<WeightSource> {
  const tensors = new Map<string, SourceTensor>();
  const kernels = decodeKernels();
  for (const file of files) {
    const st = await openSafetensors(file);
    await st.close();
    const fd = openSync(file, 'r');
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const dataStart = 8 + Number(len.readBigUInt64LE(0));
    let mapped: ArrayBuffer | undefined;
    if (kernels) {
      closeSync(fd);
      mapped = kernels.mapFile(file);
    }
    const read = (e: SafetensorsEntry): Uint8Array => {
      const [b, end] = e.offsets;
      if (mapped) return new Uint8Array(mapped, dataStart + b, end - b);
      const buf = Buffer.alloc(end - b);
      readSync(fd, buf, 0, end - b, dataStart + b);
      return buf;
    };
    for (const [name, e] of st.entries)
      tensors.set(name, { name, dtype: e.dtype, shape: e.shape, bytes: () => read(e) });
  }
  const get = (name: string): SourceTensor => {
    const t = tensors.get(name);
    if (!t) throw new YuanError('checkpoint', `the checkpoint has no tensor ${name}`);
    return t;
  };
  return {
    tensors,
    ...(quantization ? { quantization } : {}),
    get,
    floats(name) {
      const t = get(name);
      const b = t.bytes();
      if (t.dtype === 'F32') return new Float32Array(copyOf(b).buffer);
      if (t.dtype !== 'F16' && t.dtype !== 'BF16')
        throw new YuanError('checkpoint', `tensor ${name} has dtype ${t.dtype}; expected F32, F16 or BF16`);
      const u = new Uint16Array(copyOf(b).buffer);
      const out = new Float32Array(u.length);
      const convert = t.dtype === 'F16' ? halfToFloat : bf16ToFloat;
      for (let i = 0; i < u.length; i++) out[i] = convert(u[i]);
      return out;
    },
  };
}

function copyOf(b: Uint8Array): Uint8Array {
  const c = new Uint8Array(b.length);
  c.set(b);
  return c;
}

/** A typed view of a tensor's bytes: no copy when aligned, a copy otherwise. */
export function viewAs<T extends Uint16Array | Int32Array | Float32Array>(
  b: Uint8Array,
  Type: { new (buffer: ArrayBufferLike, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
): T {
  const w = Type.BYTES_PER_ELEMENT;
  if (b.byteOffset % w === 0) return new Type(b.buffer, b.byteOffset, b.byteLength / w);
  return new Type(copyOf(b).buffer, 0, b.byteLength / w);
}
