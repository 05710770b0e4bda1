import { chmod, readdir, rm, lstat } from 'node:fs/promises';
import path from 'node:path';

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const name of entries) {
    const p = path.join(dir, name);
    const st = await lstat(p).catch(() => undefined);
    if (st?.isDirectory()) await makeWritable(p);
  }
}

/** Removes a work directory even when the program left unreadable or unwritable folders in it. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true });
  }
}
