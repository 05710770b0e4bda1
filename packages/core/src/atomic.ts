import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * A temporary name beside `target` that belongs to this process: `.<base>.partial-<host>-<pid>-<random>`. Cleaners
 * remove only staging names of processes that are gone (`isStaleStagingName`), so writers that share a folder
 * (ranks of one run) never delete each other's work.
 */
export function stagingPath(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target).replace(/^\.+/, '');
  return path.join(dir, `.${base}.partial-${safeHost()}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function safeHost(): string {
  return hostname().replace(/[^A-Za-z0-9_]/g, '_');
}

const STAGING = /^\..+\.partial-([A-Za-z0-9_]+)-(\d+)-[0-9a-f]+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True for a staging name (see `stagingPath`) whose writer was a process on this host that no longer runs. */
export function isStaleStagingName(name: string): boolean {
  const m = STAGING.exec(name);
  if (!m) return false;
  return m[1] === safeHost() && Number(m[2]) !== process.pid && !alive(Number(m[2]));
}

/** Removes the staging files and folders in `dir` left by dead writers on this host (never a live writer's). */
export async function removeStaleStaging(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const name of await readdir(dir))
    if (isStaleStagingName(name)) await rm(path.join(dir, name), { recursive: true, force: true });
}

/** fsync of a file or a folder (a folder's fsync makes the names in it durable; where the platform refuses it, nothing). */
export async function fsyncPath(p: string): Promise<void> {
  let fh;
  try {
    fh = await open(p, 'r');
  } catch {
    return;
  }
  try {
    await fh.sync();
  } catch (e) {
    if (!['EISDIR', 'EINVAL', 'EBADF', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await fh.close();
  }
}

async function fsyncTree(p: string): Promise<void> {
  if ((await stat(p)).isDirectory()) {
    for (const name of await readdir(p)) await fsyncTree(path.join(p, name));
  }
  await fsyncPath(p);
}

/**
 * Writes `target` (a file or a folder) durably and atomically: `write(tmp)` fills a staging path beside it, then
 * every file and folder under it is fsynced, it is renamed over `target` (an existing folder is moved aside first and
 * removed after), and the parent folder is fsynced. A crash at any point leaves the old `target` or the new one, never
 * a mix; an error in `write` removes the staging path and rethrows.
 */
export async function writeAtomic(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = stagingPath(target);
  try {
    await write(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await commitStaged(tmp, target);
}

/**
 * Makes a staged file or folder (written by a streaming writer under `stagingPath(target)`) durable and puts it in
 * place: every file and folder under it fsynced, renamed over `target` (an existing folder moved aside first and
 * removed after), the parent folder fsynced. On an error the staging path is removed and the error rethrown.
 */
export async function commitStaged(tmp: string, target: string): Promise<void> {
  const parent = path.dirname(target);
  try {
    await fsyncTree(tmp);
    if (existsSync(target) && (await stat(target)).isDirectory()) {
      const old = stagingPath(`${target}.old`);
      await rename(target, old);
      await rename(tmp, target);
      await fsyncPath(parent);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
    await fsyncPath(parent);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Writes a whole file durably and atomically (see `writeAtomic`). */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeAtomic(file, async (tmp) => {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
  });
}

/** `writeFileAtomic` for synchronous callers: staging file beside `file`, fsynced, renamed, folder fsynced. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true });
  const tmp = stagingPath(file);
  try {
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
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // a folder fsync the platform refuses
  }
}
