import { open, stat } from 'node:fs/promises';
import { writeAtomic, YuanError } from '@yuan/core';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from './half.js';

/** Float dtypes yuan reads and writes. */
export type FloatDType = 'F32' | 'F16' | 'BF16';

const BYTES: Record<FloatDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** One tensor's header entry. */
export interface SafetensorsEntry {
  dtype: FloatDType;
  shape: number[];
  /** Byte offsets [begin, end) inside the data section. */
  offsets: [number, number];
}

/** An open safetensors file: its header, and tensors read on demand as float32. */
export interface SafetensorsFile {
  path: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Reads one tensor, converted to float32. */
  read(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

function bad(path: string, what: string): never {
  throw new YuanError('checkpoint', `${path}: ${what}`);
}

/** Opens a safetensors file and validates its header (sizes, offsets, dtypes); a truncated or foreign file is a clear error. */
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
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      bad(path, 'header is not valid JSON (not a safetensors file, or corrupted)');
    }
    const dataStart = 8 + headerLen;
    const dataLen = size - dataStart;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = raw as Record<string, string>;
        continue;
      }
      const e = raw as { dtype: string; shape: number[]; data_offsets: [number, number] };
      if (!(e.dtype in BYTES)) bad(path, `tensor ${name} has dtype ${e.dtype}; supported: F32, F16, BF16`);
      const dtype = e.dtype as FloatDType;
      const count = e.shape.reduce((a, b) => a * b, 1);
      const [begin, end] = e.data_offsets;
      if (end - begin !== count * BYTES[dtype]) {
        bad(path, `tensor ${name}: shape [${e.shape}] ${dtype} needs ${count * BYTES[dtype]} bytes but offsets span ${end - begin}`);
      }
      if (end > dataLen) bad(path, `truncated: tensor ${name} ends at byte ${dataStart + end} but the file has ${size}`);
      entries.set(name, { dtype, shape: e.shape, offsets: [begin, end] });
    }
    return {
      path,
      entries,
      metadata,
      async read(name) {
        const entry = entries.get(name);
        if (!entry) bad(path, `no tensor named ${name}`);
        const [begin, end] = entry.offsets;
        const buf = Buffer.alloc(end - begin);
        await fh.read(buf, 0, end - begin, dataStart + begin);
        return decode(buf, entry.dtype);
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

/** A tensor to write. */
export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
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
  const dtype = options.dtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new YuanError('checkpoint', `tensor ${t.name}: shape [${t.shape}] does not hold ${t.data.length} values`);
    const bytes = count * BYTES[dtype];
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
      for (const t of tensors) await fh.write(encode(t.data, dtype));
    } finally {
      await fh.close();
    }
  });
}
