import { existsSync, readFileSync } from 'node:fs';
import { YuanError } from '@yuan/core';

/** Reads and parses a JSON file; a missing or malformed file is an error naming it. */
export function readJsonFile(file: string): unknown {
  if (!existsSync(file)) throw new YuanError('input', `file not found: ${file}`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
}
