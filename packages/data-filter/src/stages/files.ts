import { existsSync, readdirSync, rmSync } from 'node:fs';
import { writeFileAtomicSync } from '@yuan/core';
import path from 'node:path';

/** Writes `data` to `file` durably and atomically (a staging file fsynced and renamed): never a partial file. */
export const writeFileAtomic = writeFileAtomicSync;

/** Removes staging files left in `dir` by killed writers (`.NAME.partial-HOST-PID-RAND`) whose NAME satisfies `mine`. */
export function removeStaleTemps(dir: string, mine: (name: string) => boolean): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    const m = /^\.(.+)\.partial-[A-Za-z0-9_]+-\d+-[0-9a-f]+$/.exec(f);
    if (m && mine(m[1])) rmSync(path.join(dir, f), { force: true });
  }
}

/** Views a file's bytes as 32-bit words (copying when unaligned). */
export function words(buf: Buffer): Uint32Array {
  if (buf.byteOffset % 4 === 0) return new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  return new Uint32Array(Uint8Array.from(buf).buffer, 0, buf.byteLength >>> 2);
}
