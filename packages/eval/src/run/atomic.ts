import { createWriteStream, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { commitStaged, stagingPath } from '@yuan/core';
import path from 'node:path';

/** Writes a whole file durably and atomically (@yuan/core's helper). */
export { writeFileAtomic } from '@yuan/core';

/**
 * A JSON Lines file written line by line to a temporary name (its folder and file made at the first line) and renamed
 * into place by `commit()`; `abort()` removes the temporary file.
 */
export class AtomicJsonLines {
  private readonly tmp: string;
  private stream: WriteStream | undefined;
  private failure: Error | undefined;

  constructor(private readonly file: string) {
    this.tmp = stagingPath(file);
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
    await commitStaged(this.tmp, this.file);
  }

  /** Drops what was written. */
  abort(): void {
    this.stream?.destroy();
    if (this.stream) rmSync(this.tmp, { force: true });
  }
}
