import { open, stat } from 'node:fs/promises';
import { writeAtomic, YuanError } from '@yuan/core';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from './half.js';

/** Float dtypes yuan reads and writes. */
export type FloatDType = 'F32' | 'F16' | 'BF16';

const BYTES: Record<FloatDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Bytes per element of every dtype the safetensors format defines (yuan reads only the float ones as weights). */
const FORMAT_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** One tensor's header entry. */
export interface SafetensorsEntry {
  /** The dtype as the header names it: F32, F16 or BF16 for tensors yuan can read, any other string otherwise. */
  dtype: FloatDType | (string & {});
  shape: number[];
  /** Byte offsets [begin, end) inside the data section. */
  offsets: [number, number];
  /** Whether `read` can convert this tensor (its dtype is F32, F16 or BF16). */
  readable: boolean;
}

/**
 * An open safetensors file: its header, and tensors read on demand as float32. Every entry's offsets were checked;
 * tensors of other dtypes (I64 buffers, F64, an unknown dtype) are listed but only a float one can be `read`.
 */
export interface SafetensorsFile {
  path: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Reads one tensor, converted to float32; a tensor that is not F32, F16 or BF16 is a one-line error. */
  read(name: string): Promise<Float32Array>;
  /** Reads one tensor of any dtype as its stored little-endian bytes (for I32 packed weights, say). */
  readBytes(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

function bad(path: string, what: string): never {
  throw new YuanError('checkpoint', `${path}: ${what}`);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks one header entry's structure (a malformed one is a one-line error naming the file and the tensor). */
function parseEntry(path: string, name: string, raw: unknown, dataStart: number, fileSize: number): SafetensorsEntry {
  const what = `header entry for tensor ${JSON.stringify(name)}`;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    bad(path, `${what} is ${JSON.stringify(raw)}, not an object with dtype, shape and data_offsets`);
  const e = raw as Record<string, unknown>;
  if (typeof e.dtype !== 'string')
    bad(path, `${what} has ${e.dtype === undefined ? 'no dtype' : `dtype ${JSON.stringify(e.dtype)}, not a string`}`);
  if (!Array.isArray(e.shape) || !e.shape.every(isCount)) {
    bad(
      path,
      `${what} has ${e.shape === undefined ? 'no shape' : `shape ${JSON.stringify(e.shape)}, not a list of non-negative integers`}`,
    );
  }
  const off = e.data_offsets;
  if (off === undefined) bad(path, `${what} has no data_offsets`);
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount)) {
    bad(path, `${what} has data_offsets ${JSON.stringify(off)}, not [begin, end] byte offsets`);
  }
  const [begin, end] = off as [number, number];
  if (end < begin) bad(path, `${what} has data_offsets [${begin}, ${end}]: the end is before the begin`);
  if (dataStart + end > fileSize)
    bad(path, `truncated: tensor ${name} ends at byte ${dataStart + end} but the file has ${fileSize}`);
  const shape = e.shape as number[];
  const width = FORMAT_BYTES[e.dtype];
  if (width !== undefined) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * width) {
      bad(
        path,
        `tensor ${name}: shape [${shape}] ${e.dtype} needs ${count * width} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
  }
  return { dtype: e.dtype, shape, offsets: [begin, end], readable: e.dtype in BYTES };
}

/**
 * Opens a safetensors file and validates its header: the JSON, each entry's dtype, shape and data_offsets, offsets
 * inside the file and not overlapping, and sizes that match the shapes. A malformed, truncated or foreign file is a
 * one-line error naming the file (and the tensor). Tensors of dtypes yuan does not read are kept in `entries`, so a
 * caller can skip the ones it does not need.
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new YuanError('checkpoint', `${path}: safetensors file not found`);
  }
  if (size < 8) bad(path, `not a safetensors file (${size} bytes, too short for a header)`);
  const fh = await open(path, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > size) {
      bad(path, `not a safetensors file or truncated (header length ${headerLen}, file size ${size})`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      bad(path, `header is not valid JSON (not a safetensors file, or corrupted): ${(e as Error).message}`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header))
      bad(path, 'header is not a JSON object of tensors (not a safetensors file)');
    const dataStart = 8 + headerLen;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (
          !raw ||
          typeof raw !== 'object' ||
          Array.isArray(raw) ||
          !Object.values(raw).every((v) => typeof v === 'string')
        ) {
          bad(path, `__metadata__ is ${JSON.stringify(raw)}; expected an object of strings`);
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      entries.set(name, parseEntry(path, name, raw, dataStart, size));
    }
    const byStart = [...entries]
      .filter(([, e]) => e.offsets[1] > e.offsets[0])
      .sort((a, b) => a[1].offsets[0] - b[1].offsets[0]);
    for (let i = 1; i < byStart.length; i++) {
      const [prevName, prev] = byStart[i - 1];
      const [name, e] = byStart[i];
      if (e.offsets[0] < prev.offsets[1]) {
        bad(path, `tensors ${prevName} [${prev.offsets}] and ${name} [${e.offsets}] overlap in the data section`);
      }
    }
    return {
      path,
      entries,
      metadata,
      async read(name) {
        const entry = entries.get(name);
        if (!entry) bad(path, `no tensor named ${name}`);
        if (!entry.readable)
          bad(path, `tensor ${name} has dtype ${entry.dtype}; yuan reads weights as F32, F16 or BF16`);
        const [begin, end] = entry.offsets;
        const buf = Buffer.alloc(end - begin);
        await fh.read(buf, 0, end - begin, dataStart + begin);
        return decode(buf, entry.dtype as FloatDType);
      },
      async readBytes(name) {
        const entry = entries.get(name);
        if (!entry) bad(path, `no tensor named ${name}`);
        const [begin, end] = entry.offsets;
        const buf = Buffer.alloc(end - begin);
        await fh.read(buf, 0, end - begin, dataStart + begin);
        return buf;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

function decode(buf: Buffer, dtype: FloatDType): Float32Array {
  const n = buf.length / BYTES[dtype];
  if (dtype === 'F32') {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(buf);
    return out;
  }
  const out = new Float32Array(n);
  const convert = dtype === 'F16' ? halfToFloat : bf16ToFloat;
  for (let i = 0; i < n; i++) out[i] = convert(buf.readUInt16LE(i * 2));
  return out;
}

function encode(data: Float32Array, dtype: FloatDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = Buffer.alloc(data.length * 2);
  const convert = dtype === 'F16' ? floatToHalf : floatToBf16;
  for (let i = 0; i < data.length; i++) out.writeUInt16LE(convert(data[i]), i * 2);
  return out;
}

/** A tensor to write: float32 values, stored in `dtype` (default: the file's), or int32 values, stored as I32. */
export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array | Int32Array;
  /** Stored float dtype of this tensor (ignored for Int32Array data, stored as I32); defaults to the `dtype` option of `writeSafetensors` (e.g. F32 buffers in a BF16 file). */
  dtype?: FloatDType;
}

/**
 * Writes tensors to a safetensors file atomically: to a temporary name in the same folder, fsynced, then renamed,
 * so a crash leaves either the old file or the new one, never a partial one.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: { dtype?: FloatDType; metadata?: Record<string, string> } = {},
): Promise<void> {
  const dtypeOf = (t: TensorToWrite): FloatDType => t.dtype ?? options.dtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new YuanError('checkpoint', `tensor ${t.name}: shape [${t.shape}] does not hold ${t.data.length} values`);
    const dtype = t.data instanceof Int32Array ? 'I32' : dtypeOf(t);
    const bytes = count * (dtype === 'I32' ? 4 : BYTES[dtype]);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));
  await writeAtomic(path, async (tmp) => {
    const fh = await open(tmp, 'w');
    try {
      await fh.write(lenBuf);
      await fh.write(headerBuf);
      for (const t of tensors) {
        const d = t.data;
        await fh.write(
          d instanceof Int32Array ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : encode(d, dtypeOf(t)),
        );
      }
    } finally {
      await fh.close();
    }
  });
}
