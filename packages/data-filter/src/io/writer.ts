import { createWriteStream, rmSync, mkdirSync, type WriteStream } from 'node:fs';
import { commitStaged, stagingPath } from '@yuan/core';
import path from 'node:path';
import { createGzip, type Gzip } from 'node:zlib';
import type { Writable } from 'node:stream';

const FLUSH_BYTES = 1 << 20;

/**
 * Writes text to `target` through a temporary file in the same folder, renamed over `target` by `commit()`, so a crash
 * never leaves a partial output under the real name. Gzip when the name ends in `.gz`. Writes are buffered and
 * synchronous for the caller; `drain()` must be awaited regularly to honour the file's backpressure.
 */
export class AtomicWriter {
  readonly temp: string;
  private readonly file: WriteStream;
  private readonly sink: Writable;
  private readonly gzip?: Gzip;
  private buffer: string[] = [];
  private buffered = 0;
  private blocked = false;
  private failure?: Error;
  /** Bytes handed to the writer (uncompressed). */
  bytes = 0;

  constructor(readonly target: string) {
    mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    this.temp = stagingPath(path.resolve(target));
    this.file = createWriteStream(this.temp);
    this.file.on('error', (e) => (this.failure ??= e));
    if (/\.gz$/i.test(target)) {
      this.gzip = createGzip({ level: 6 });
      this.gzip.on('error', (e) => (this.failure ??= e));
      this.gzip.pipe(this.file);
      this.sink = this.gzip;
    } else {
      this.sink = this.file;
    }
    // A persistent listener: the stream may drain while the caller awaits something else (worker results).
    this.sink.on('drain', () => (this.blocked = false));
  }

  /** Appends text (buffered). */
  write(text: string): void {
    this.buffer.push(text);
    this.buffered += text.length;
    this.bytes += Buffer.byteLength(text);
    if (this.buffered >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    const data = this.buffer.join('');
    this.buffer = [];
    this.buffered = 0;
    if (!this.sink.write(data)) this.blocked = true;
  }

  /** Waits until the underlying stream has room again (after a flush that filled it). */
  async drain(): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.blocked) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.sink.off('error', onError);
        resolve();
      };
      const onError = (e: Error) => {
        this.sink.off('drain', onDrain);
        reject(e);
      };
      this.sink.once('drain', onDrain);
      this.sink.once('error', onError);
    });
  }

  /** Flushes, closes, fsyncs and renames the temporary file to the target name (`commitStaged` of @yuan/core). */
  async commit(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve, reject) => {
      this.file.once('close', () => (this.failure ? reject(this.failure) : resolve()));
      this.file.once('error', reject);
      this.sink.end();
    });
    await commitStaged(this.temp, this.target);
  }

  /** Closes and deletes the temporary file (after a failure). */
  async abort(): Promise<void> {
    this.buffer = [];
    await new Promise<void>((resolve) => {
      if (this.file.closed) return resolve();
      this.file.once('close', () => resolve());
      this.sink.destroy();
      this.file.destroy();
    });
    rmSync(this.temp, { force: true });
  }
}
