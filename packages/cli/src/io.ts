import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { YuanError } from '@yuan/core';

/** Writes a file atomically (temporary name, then rename), so a crash never leaves a partial result. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Reads and parses a JSON file; a missing or malformed file is an error naming it. */
export function readJsonFile(file: string): unknown {
  if (!existsSync(file)) throw new YuanError('input', `file not found: ${file}`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
}
