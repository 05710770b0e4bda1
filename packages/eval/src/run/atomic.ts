import { createWriteStream, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Writes a file under a temporary name, then renames it, so a crash never leaves a partial result. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/**
 * A JSON Lines file written line by line to a temporary name (its folder and file made at the first line) and renamed
 * into place by `commit()`; `abort()` removes the temporary file.
 */
export class AtomicJsonLines {
  private readonly tmp: string;
  private stream: WriteStream | undefined;
  private failure: Error | undefined;

  constructor(private readonly file: string) {
    this.tmp = `${file}.tmp-${process.pid}`;
  }

  private open(): WriteStream {
    if (!this.stream) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.stream = createWriteStream(this.tmp);
      this.stream.on('error', (e) => (this.failure = e));
    }
    return this.stream;
  }

  /** Appends one record. */
  write(record: unknown): void {
    this.open().write(`${JSON.stringify(record)}\n`);
  }

  /** Flushes and renames into place (an empty file when nothing was written). */
  async commit(): Promise<void> {
    const stream = this.open();
    await new Promise<void>((resolve, reject) => stream.end((e?: Error | null) => (e ? reject(e) : resolve())));
    if (this.failure) throw this.failure;
    await rename(this.tmp, this.file);
  }

  /** Drops what was written. */
  abort(): void {
    this.stream?.destroy();
    if (this.stream) rmSync(this.tmp, { force: true });
  }
}
