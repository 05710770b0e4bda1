import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { NotFoundError, YuanError } from '@yuan/core';

/** Reads a data set file under `dataDir`; a missing file is an error naming it and the data folder. */
export function readDataFile(dataDir: string, relative: string): string {
  const file = path.resolve(dataDir, relative);
  if (!existsSync(file)) {
    throw new NotFoundError(
      `data set file not found: ${file} (give --data-dir DIR, the folder holding humaneval/, gsm8k/, agieval/ ...)`,
    );
  }
  const bytes = readFileSync(file);
  return (file.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
}

/** Parses JSON Lines (blank lines skipped); a malformed line is an error naming the file and line number. */
export function parseJsonLines(text: string, name: string): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new YuanError('input', `${name}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new YuanError('input', `${name}:${i + 1}: expected a JSON object per line`);
    }
    rows.push(row as Record<string, unknown>);
  });
  return rows;
}

/** The first `limit` items (all when limit is undefined). */
export function limited<T>(items: T[], limit: number | undefined): T[] {
  return limit === undefined ? items : items.slice(0, limit);
}
