import { existsSync, readFileSync } from 'node:fs';
import { NotFoundError, YuanError } from '@yuan/core';
import { parseJsonLines } from '../data/files.js';

/**
 * Reads supplied completions (`--samples FILE.jsonl`): one object per line with an id (`task_id`, `question_id` or
 * `index`) and a string `completion`; several lines per id are several samples, in file order.
 */
export function readSamplesFile(file: string): Map<string, string[]> {
  if (!existsSync(file)) throw new NotFoundError(`samples file not found: ${file}`);
  const rows = parseJsonLines(readFileSync(file, 'utf8'), file);
  const out = new Map<string, string[]>();
  rows.forEach((row, i) => {
    const id = row.task_id ?? row.question_id ?? row.index;
    if (typeof id !== 'string' && typeof id !== 'number') {
      throw new YuanError('input', `${file}:${i + 1}: needs "task_id", "question_id" or "index" (a string or number)`);
    }
    if (typeof row.completion !== 'string')
      throw new YuanError('input', `${file}:${i + 1}: "completion" must be a string`);
    const key = String(id);
    if (!out.has(key)) out.set(key, []);
    out.get(key)!.push(row.completion);
  });
  if (out.size === 0) throw new YuanError('input', `${file}: no samples`);
  return out;
}
