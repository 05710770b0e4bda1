import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

/** Writes a file under a temporary name, then renames it, so a crash never leaves a partial result. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** A JSON Lines file written line by line to a temporary name and renamed into place by `commit()`. */
export class AtomicJsonLines {
  private readonly tmp: string;
  private readonly stream: WriteStream;
  private failure: Error | undefined;

  constructor(private readonly file: string) {
    this.tmp = `${file}.tmp-${process.pid}`;
    this.stream = createWriteStream(this.tmp);
    this.stream.on('error', (e) => (this.failure = e));
  }

  /** Appends one record. */
  write(record: unknown): void {
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  /** Flushes and renames into place. */
  async commit(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.stream.end((e?: Error | null) => (e ? reject(e) : resolve())));
    if (this.failure) throw this.failure;
    await rename(this.tmp, this.file);
  }
}
