import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { YuanError } from '@yuan/core';

/**
 * Megatron's memory-mapped indexed dataset (`MMapIndexedDataset`, the format YUAN's `preprocess_data_yuan.py` and
 * Megatron-LM's `preprocess_data.py` write): `PREFIX.bin` holds the token ids of every sequence back to back;
 * `PREFIX.idx` is `MMIDIDX\x00\x00`, version (u64 = 1), dtype code (u8), sequence count N (u64), document count D
 * (u64), sizes (i32 × N, tokens per sequence), pointers (i64 × N, byte offset of each sequence in .bin) and the
 * document index (i64 × D, the first sequence of each document, then N).
 */
export const MMIDIDX_MAGIC = Buffer.from('MMIDIDX\x00\x00', 'latin1');
const HEADER_BYTES = 9 + 8 + 1 + 8 + 8;

/**
 * Megatron's dtype codes (indexed_dataset.py `dtypes`) of the integer types token ids are stored in, with byte sizes
 * and the largest id each can hold (int64's is capped at `Number.MAX_SAFE_INTEGER`).
 */
export const MEGATRON_DTYPES: Record<number, { name: string; bytes: number; max: number }> = {
  1: { name: 'uint8', bytes: 1, max: 0xff },
  2: { name: 'int8', bytes: 1, max: 0x7f },
  3: { name: 'int16', bytes: 2, max: 0x7fff },
  4: { name: 'int32', bytes: 4, max: 0x7fffffff },
  5: { name: 'int64', bytes: 8, max: Number.MAX_SAFE_INTEGER },
  8: { name: 'uint16', bytes: 2, max: 0xffff },
};

/** Megatron's `best_fitting_dtype`: uint16 (code 8) below 65,500 ids, else int32 (code 4). */
export function bestFittingDtype(vocabSize: number): number {
  return vocabSize < 65500 ? 8 : 4;
}

/** The header of an `.idx` file. */
export interface IndexedHeader {
  dtype: number;
  itemBytes: number;
  sequences: number;
  documents: number;
}

const CHUNK = 1 << 16;

class Buffered {
  private buf = Buffer.allocUnsafe(1 << 20);
  private at = 0;
  bytes = 0;
  constructor(readonly fd: number) {}
  write(b: Buffer): void {
    if (this.at + b.length > this.buf.length) this.flush();
    if (b.length > this.buf.length) {
      writeAll(this.fd, b);
    } else {
      b.copy(this.buf, this.at);
      this.at += b.length;
    }
    this.bytes += b.length;
  }
  flush(): void {
    if (this.at > 0) writeAll(this.fd, this.buf.subarray(0, this.at));
    this.at = 0;
  }
}

function writeAll(fd: number, b: Buffer): void {
  let at = 0;
  while (at < b.length) at += writeSync(fd, b, at, b.length - at);
}

/**
 * Streams sequences into `PREFIX.bin` + `PREFIX.idx` (each sequence one document, as Megatron's `preprocess_data.py`
 * writes them). Memory stays bounded: sizes go to a temporary file and the index is assembled from it at `finish`.
 * Everything is written under temporary names and renamed at the end; `abort` removes them.
 */
export class IndexedDatasetWriter {
  private readonly bin: Buffered;
  private readonly sizes: Buffered;
  private count = 0;
  private tokens = 0;
  private readonly tmp: { bin: string; sizes: string; idx: string };
  readonly itemBytes: number;

  constructor(
    readonly prefix: string,
    readonly dtype: number,
  ) {
    const t = MEGATRON_DTYPES[dtype];
    if (!t)
      throw new YuanError(
        'usage',
        `Megatron dtype code ${dtype} is not an integer type (codes ${Object.keys(MEGATRON_DTYPES).join(', ')})`,
      );
    this.itemBytes = t.bytes;
    const dir = path.dirname(path.resolve(prefix));
    const base = path.basename(prefix);
    this.tmp = {
      bin: path.join(dir, `.${base}.bin.tmp-${process.pid}`),
      sizes: path.join(dir, `.${base}.sizes.tmp-${process.pid}`),
      idx: path.join(dir, `.${base}.idx.tmp-${process.pid}`),
    };
    this.bin = new Buffered(openSync(this.tmp.bin, 'w'));
    this.sizes = new Buffered(openSync(this.tmp.sizes, 'w+'));
  }

  /** Sequences and tokens written so far. */
  get sequences(): number {
    return this.count;
  }
  get totalTokens(): number {
    return this.tokens;
  }

  /** Appends one sequence (one document). An id that does not fit the dtype is an error. */
  add(ids: ArrayLike<number>): void {
    const max =
      this.dtype === 8
        ? 0xffff
        : this.dtype === 1
          ? 0xff
          : this.dtype === 3
            ? 0x7fff
            : this.dtype === 2
              ? 0x7f
              : 0x7fffffff;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id <= max))
        throw new YuanError(
          'input',
          `token id ${id} does not fit the Megatron dtype ${MEGATRON_DTYPES[this.dtype].name}`,
        );
    }
    // Little-endian typed arrays (Node runs on little-endian platforms only), as numpy writes them on x86/ARM.
    const arr =
      this.dtype === 8
        ? Uint16Array.from(ids)
        : this.dtype === 4
          ? Int32Array.from(ids)
          : this.dtype === 3
            ? Int16Array.from(ids)
            : this.dtype === 1
              ? Uint8Array.from(ids)
              : this.dtype === 2
                ? Int8Array.from(ids)
                : BigInt64Array.from(Array.from(ids, (x) => BigInt(x)));
    this.bin.write(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
    const s = Buffer.allocUnsafe(4);
    s.writeInt32LE(ids.length, 0);
    this.sizes.write(s);
    this.count++;
    this.tokens += ids.length;
  }

  /** Writes the index, fsyncs both files and renames them to `PREFIX.bin` and `PREFIX.idx`. */
  finish(): { sequences: number; tokens: number } {
    this.bin.flush();
    fsyncSync(this.bin.fd);
    closeSync(this.bin.fd);
    this.sizes.flush();
    const n = this.count;
    const idx = new Buffered(openSync(this.tmp.idx, 'w'));
    const head = Buffer.alloc(HEADER_BYTES);
    MMIDIDX_MAGIC.copy(head, 0);
    head.writeBigUInt64LE(1n, 9);
    head.writeUInt8(this.dtype, 17);
    head.writeBigUInt64LE(BigInt(n), 18);
    head.writeBigUInt64LE(BigInt(n + 1), 26);
    idx.write(head);
    const chunk = Buffer.allocUnsafe(CHUNK * 4);
    // sizes, copied from the temporary file
    for (let i = 0; i < n; i += CHUNK) {
      const k = Math.min(CHUNK, n - i);
      readSync(this.sizes.fd, chunk, 0, k * 4, i * 4);
      idx.write(chunk.subarray(0, k * 4));
    }
    // pointers: the running byte offset
    let offset = 0n;
    const ptr = Buffer.allocUnsafe(CHUNK * 8);
    for (let i = 0; i < n; i += CHUNK) {
      const k = Math.min(CHUNK, n - i);
      readSync(this.sizes.fd, chunk, 0, k * 4, i * 4);
      for (let j = 0; j < k; j++) {
        ptr.writeBigInt64LE(offset, j * 8);
        offset += BigInt(chunk.readInt32LE(j * 4) * this.itemBytes);
      }
      idx.write(ptr.subarray(0, k * 8));
    }
    // document index: every sequence is a document
    for (let i = 0; i <= n; i += CHUNK) {
      const k = Math.min(CHUNK, n + 1 - i);
      for (let j = 0; j < k; j++) ptr.writeBigInt64LE(BigInt(i + j), j * 8);
      idx.write(ptr.subarray(0, k * 8));
    }
    idx.flush();
    fsyncSync(idx.fd);
    closeSync(idx.fd);
    closeSync(this.sizes.fd);
    rmSync(this.tmp.sizes, { force: true });
    renameSync(this.tmp.bin, `${this.prefix}.bin`);
    renameSync(this.tmp.idx, `${this.prefix}.idx`);
    return { sequences: n, tokens: this.tokens };
  }

  /** Closes and removes the temporary files. */
  abort(): void {
    for (const fd of [this.bin.fd, this.sizes.fd]) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    for (const f of Object.values(this.tmp)) rmSync(f, { force: true });
  }
}

/**
 * An opened Megatron indexed dataset. Opening reads and checks the header, streams the sizes and pointers in chunks
 * (the token stream must be contiguous, as every Megatron builder writes it) and checks the `.bin` size; token reads
 * are `pread`s, so neither file is ever loaded whole. Errors name the file and what is wrong, on one line.
 */
export class IndexedDataset {
  private constructor(
    readonly prefix: string,
    readonly header: IndexedHeader,
    /** Tokens in all sequences. */
    readonly tokens: number,
    private readonly fdIdx: number,
    private readonly fdBin: number,
  ) {}

  /** Opens `PREFIX.idx` + `PREFIX.bin`. */
  static open(prefix: string): IndexedDataset {
    const idxFile = `${prefix}.idx`;
    const binFile = `${prefix}.bin`;
    for (const f of [idxFile, binFile])
      if (!existsSync(f))
        throw new YuanError('input', `${f} not found (a Megatron indexed dataset is PREFIX.bin + PREFIX.idx)`);
    const fdIdx = openSync(idxFile, 'r');
    const fdBin = openSync(binFile, 'r');
    try {
      const size = fstatSync(fdIdx).size;
      const head = Buffer.alloc(HEADER_BYTES);
      const got = readSync(fdIdx, head, 0, HEADER_BYTES, 0);
      if (got < HEADER_BYTES || !head.subarray(0, 9).equals(MMIDIDX_MAGIC))
        throw new YuanError('input', `${idxFile} is not a Megatron MMIDIDX index (bad magic)`);
      const version = head.readBigUInt64LE(9);
      if (version !== 1n) throw new YuanError('input', `${idxFile}: index version ${version}; only version 1 is known`);
      const dtype = head.readUInt8(17);
      const t = MEGATRON_DTYPES[dtype];
      if (!t)
        throw new YuanError(
          'input',
          `${idxFile}: dtype code ${dtype} is not an integer token type (codes ${Object.keys(MEGATRON_DTYPES).join(', ')})`,
        );
      const n = Number(head.readBigUInt64LE(18));
      const d = Number(head.readBigUInt64LE(26));
      const expected = HEADER_BYTES + n * 12 + d * 8;
      if (size !== expected)
        throw new YuanError(
          'input',
          `${idxFile}: ${size} bytes, but ${n} sequences and ${d} documents need ${expected} (truncated or corrupt)`,
        );
      // Stream sizes and pointers: every pointer must be the running byte offset.
      let total = 0;
      const sz = Buffer.allocUnsafe(CHUNK * 4);
      const pt = Buffer.allocUnsafe(CHUNK * 8);
      for (let i = 0; i < n; i += CHUNK) {
        const k = Math.min(CHUNK, n - i);
        readSync(fdIdx, sz, 0, k * 4, HEADER_BYTES + i * 4);
        readSync(fdIdx, pt, 0, k * 8, HEADER_BYTES + n * 4 + i * 8);
        for (let j = 0; j < k; j++) {
          const s = sz.readInt32LE(j * 4);
          const p = Number(pt.readBigInt64LE(j * 8));
          if (s < 0) throw new YuanError('input', `${idxFile}: sequence ${i + j} has negative size ${s}`);
          if (p !== total * t.bytes)
            throw new YuanError(
              'input',
              `${idxFile}: sequence ${i + j} starts at byte ${p}, not ${total * t.bytes}: only contiguous datasets are supported`,
            );
          total += s;
        }
      }
      const binSize = fstatSync(fdBin).size;
      if (binSize !== total * t.bytes) {
        throw new YuanError(
          'input',
          `${binFile}: ${binSize} bytes, but ${idxFile} describes ${total} tokens of ${t.bytes} bytes (${total * t.bytes} bytes): truncated or from another index`,
        );
      }
      return new IndexedDataset(prefix, { dtype, itemBytes: t.bytes, sequences: n, documents: d }, total, fdIdx, fdBin);
    } catch (e) {
      closeSync(fdIdx);
      closeSync(fdBin);
      throw e;
    }
  }

  /** Reads `count` tokens starting at token `start` of the stream into `out` (from `at`). */
  read(start: number, count: number, out: Int32Array | number[], at = 0): void {
    const b = this.header.itemBytes;
    const buf = Buffer.allocUnsafe(count * b);
    const got = readSync(this.fdBin, buf, 0, buf.length, start * b);
    if (got !== buf.length)
      throw new YuanError('input', `${this.prefix}.bin: short read at token ${start} (file changed while training?)`);
    for (let i = 0; i < count; i++) out[at + i] = readItem(buf, i, this.header.dtype);
  }

  /** The sizes of sequences [from, from + count) (read from the index, not cached). */
  sizes(from = 0, count = this.header.sequences - from): number[] {
    const buf = Buffer.allocUnsafe(count * 4);
    readSync(this.fdIdx, buf, 0, buf.length, HEADER_BYTES + from * 4);
    return Array.from({ length: count }, (_, i) => buf.readInt32LE(i * 4));
  }

  /** The document index (first sequence of each document, then the sequence count). */
  documentIndex(): number[] {
    const { sequences: n, documents: d } = this.header;
    const buf = Buffer.allocUnsafe(d * 8);
    readSync(this.fdIdx, buf, 0, buf.length, HEADER_BYTES + n * 12);
    return Array.from({ length: d }, (_, i) => Number(buf.readBigInt64LE(i * 8)));
  }

  /**
   * The first token whose id is outside [0, `limit`), as `{ token, id }` (token: offset in the whole stream), or
   * undefined when every id is inside. One pass over `.bin` in 16 MiB chunks with a typed-array loop (int64 ids are
   * checked as two 32-bit halves), so it costs one sequential read of the file.
   */
  firstIdOutside(limit: number): { token: number; id: number } | undefined {
    const b = this.header.itemBytes;
    const signed =
      this.header.dtype === 2 || this.header.dtype === 3 || this.header.dtype === 4 || this.header.dtype === 5;
    const items = Math.floor(SCAN_BYTES / b);
    const buf = new ArrayBuffer(items * b);
    const bytes = new Uint8Array(buf);
    const view = viewOf(buf, this.header.dtype);
    for (let start = 0; start < this.tokens; start += items) {
      const n = Math.min(items, this.tokens - start);
      const got = readSync(this.fdBin, bytes, 0, n * b, start * b);
      if (got !== n * b)
        throw new YuanError('input', `${this.prefix}.bin: short read at token ${start} (file changed while reading?)`);
      const at =
        this.header.dtype === 5
          ? firstInt64Outside(view as Int32Array, n, limit)
          : firstOutside(view, n, limit, signed);
      if (at >= 0) {
        const id =
          this.header.dtype === 5
            ? (view as Int32Array)[2 * at + 1] * 2 ** 32 + ((view as Int32Array)[2 * at] >>> 0)
            : view[at];
        return { token: start + at, id };
      }
    }
    return undefined;
  }

  /**
   * Where token `token` of the stream lies: its sequence (from the sizes) and its document (the last entry of the
   * document index at or before that sequence, Megatron's `document_indices`). Reads the sizes in chunks and
   * binary-searches the document index, so it is cheap enough for an error message.
   */
  locate(token: number): { sequence: number; document: number } {
    const { sequences: n, documents: d } = this.header;
    const sz = Buffer.allocUnsafe(CHUNK * 4);
    let sequence = n - 1;
    let total = 0;
    outer: for (let i = 0; i < n; i += CHUNK) {
      const k = Math.min(CHUNK, n - i);
      readSync(this.fdIdx, sz, 0, k * 4, HEADER_BYTES + i * 4);
      for (let j = 0; j < k; j++) {
        total += sz.readInt32LE(j * 4);
        if (total > token) {
          sequence = i + j;
          break outer;
        }
      }
    }
    const entry = Buffer.allocUnsafe(8);
    const docAt = (i: number) => {
      readSync(this.fdIdx, entry, 0, 8, HEADER_BYTES + n * 12 + i * 8);
      return Number(entry.readBigInt64LE(0));
    };
    let lo = 0;
    let hi = d - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (docAt(mid) <= sequence) lo = mid;
      else hi = mid - 1;
    }
    return { sequence, document: Math.max(0, lo) };
  }

  /** The tokens of sequence `i`. */
  sequence(i: number): number[] {
    const n = this.header.sequences;
    if (!(Number.isInteger(i) && i >= 0 && i < n))
      throw new YuanError('usage', `sequence ${i} is out of range (0..${n - 1})`);
    const p = Buffer.allocUnsafe(8);
    readSync(this.fdIdx, p, 0, 8, HEADER_BYTES + n * 4 + i * 8);
    const size = this.sizes(i, 1)[0];
    const out = new Array<number>(size);
    this.read(Number(p.readBigInt64LE(0)) / this.header.itemBytes, size, out);
    return out;
  }

  /** Closes the files. */
  close(): void {
    closeSync(this.fdIdx);
    closeSync(this.fdBin);
  }
}

/** Bytes read per chunk by the id scans. */
export const SCAN_BYTES = 16 << 20;

/** A typed-array view of `buf` in the ids' dtype (int64 as Int32Array pairs, little-endian). */
function viewOf(buf: ArrayBuffer, dtype: number): Uint8Array | Int8Array | Int16Array | Int32Array | Uint16Array {
  switch (dtype) {
    case 1:
      return new Uint8Array(buf);
    case 2:
      return new Int8Array(buf);
    case 3:
      return new Int16Array(buf);
    case 4:
    case 5:
      return new Int32Array(buf);
    default:
      return new Uint16Array(buf);
  }
}

/**
 * The index of the first of `view[0..n)` outside [0, limit), or -1. Signed ids are compared as unsigned 32-bit
 * values, so a negative id fails the same single comparison.
 */
export function firstOutside(view: ArrayLike<number>, n: number, limit: number, signed: boolean): number {
  if (signed) {
    for (let i = 0; i < n; i++) if (view[i] >>> 0 >= limit) return i;
  } else {
    for (let i = 0; i < n; i++) if (view[i] >= limit) return i;
  }
  return -1;
}

/** As `firstOutside` for int64 ids stored as little-endian Int32Array pairs: the high half must be 0. */
function firstInt64Outside(view: Int32Array, n: number, limit: number): number {
  for (let i = 0; i < n; i++) if (view[2 * i + 1] !== 0 || view[2 * i] >>> 0 >= limit) return i;
  return -1;
}

function readItem(buf: Buffer, i: number, dtype: number): number {
  switch (dtype) {
    case 1:
      return buf.readUInt8(i);
    case 2:
      return buf.readInt8(i);
    case 3:
      return buf.readInt16LE(i * 2);
    case 4:
      return buf.readInt32LE(i * 4);
    case 5:
      return Number(buf.readBigInt64LE(i * 8));
    default:
      return buf.readUInt16LE(i * 2);
  }
}
