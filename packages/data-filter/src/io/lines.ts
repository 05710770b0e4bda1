import { createReadStream, openSync, readSync, closeSync, statSync, type ReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';

/** Receives the lines of the input files, synchronously; `pause` is awaited after each chunk (for output backpressure). */
export interface LineSink {
  /** A complete line (without `\n`) that belongs to this shard. */
  line(bytes: Buffer, file: string, lineNo: number): void;
  /** A line longer than the cap begins: `head` holds its first bytes (already capped). */
  longStart(head: Buffer, file: string, lineNo: number): Promise<void> | void;
  /** More bytes of the current long line. */
  longChunk(bytes: Buffer): void;
  /** The long line ended after `totalBytes` bytes. */
  longEnd(totalBytes: number): void;
  /** Called after each input chunk; the reader waits for it. */
  pause(bytesRead: number): Promise<void> | void;
}

/** Options of the reader: the line-length cap and the shard to keep (lines numbered over all files, in order). */
export interface ReadOptions {
  maxLineBytes: number;
  shard: { index: number; count: number };
}

function isGzip(file: string): boolean {
  if (/\.gz$/i.test(file)) return true;
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** Opens a file for reading, decompressing gzip (by extension or magic bytes); `raw` counts the bytes read from disk. */
function open(file: string): { stream: Readable; raw: ReadStream } {
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  if (!isGzip(file)) return { stream: raw, raw };
  const gunzip = createGunzip({ chunkSize: 1 << 20 });
  raw.on('error', (e) => gunzip.destroy(e));
  return { stream: raw.pipe(gunzip), raw };
}

/**
 * Streams the lines of `files` into `sink`, holding at most `maxLineBytes` of one line in memory: a longer line is
 * passed on in pieces (longStart/longChunk/longEnd). Lines are numbered across all files; only those whose global
 * index ≡ shard.index (mod shard.count) are passed on.
 */
export async function readLines(files: string[], sink: LineSink, options: ReadOptions): Promise<void> {
  let globalIndex = 0;
  let doneBytes = 0;
  for (const file of files) {
    let lineNo = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let longBytes = -1; // ≥ 0 while inside a long line
    let mine = false;
    const startLine = () => {
      lineNo++;
      mine = globalIndex % options.shard.count === options.shard.index;
      globalIndex++;
    };
    startLine();
    const { stream, raw } = open(file);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0;
      while (pos < chunk.length) {
        const nl = chunk.indexOf(10, pos);
        const end = nl < 0 ? chunk.length : nl;
        const piece = chunk.subarray(pos, end);
        if (longBytes >= 0) {
          longBytes += piece.length;
          if (mine) sink.longChunk(piece);
        } else if (pendingBytes + piece.length > options.maxLineBytes) {
          const head = Buffer.concat([...pending, piece]);
          longBytes = head.length;
          if (mine) await sink.longStart(head, file, lineNo);
          pending = [];
          pendingBytes = 0;
        } else if (piece.length > 0) {
          pending.push(piece);
          pendingBytes += piece.length;
        }
        if (nl < 0) break;
        if (longBytes >= 0) {
          if (mine) sink.longEnd(longBytes);
          longBytes = -1;
        } else if (mine) {
          sink.line(pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes), file, lineNo);
        }
        pending = [];
        pendingBytes = 0;
        startLine();
        pos = nl + 1;
      }
      // Copy the unfinished line out of the chunk so that the chunk is not retained.
      if (pending.length) pending = [Buffer.concat(pending, pendingBytes)];
      await sink.pause(doneBytes + raw.bytesRead);
    }
    if (longBytes >= 0) {
      if (mine) sink.longEnd(longBytes);
    } else if (pendingBytes > 0 && mine) {
      sink.line(Buffer.concat(pending, pendingBytes), file, lineNo);
    }
    doneBytes += statSync(file).size;
  }
}
