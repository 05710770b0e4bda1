import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Writes `data` to `file` through a temporary file in the same folder, fsynced and renamed: never a partial file. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let at = 0;
    while (at < buf.length) at += writeSync(fd, buf, at, buf.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Removes temporary files left in `dir` by killed writers (`.NAME.tmp-PID`) whose NAME satisfies `mine`. */
export function removeStaleTemps(dir: string, mine: (name: string) => boolean): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    const m = /^\.(.+)\.tmp-\d+$/.exec(f);
    if (m && mine(m[1])) rmSync(path.join(dir, f), { force: true });
  }
}

/** Views a file's bytes as 32-bit words (copying when unaligned). */
export function words(buf: Buffer): Uint32Array {
  if (buf.byteOffset % 4 === 0) return new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  return new Uint32Array(Uint8Array.from(buf).buffer, 0, buf.byteLength >>> 2);
}
