import { YuanError } from '@yuan/core';
import { parseJsonLines, readDataFile } from '../data/files.js';
import { gsm8kGold, normalizeNumber } from '../extract/number.js';
import { mathEvaluator, requireGold, type MathProblem } from './math-word.js';

/** Loads GSM8K's test split; ids are 0-based line indexes. */
export function loadGsm8k(dataDir: string, file = 'gsm8k/test.jsonl'): MathProblem[] {
  return parseJsonLines(readDataFile(dataDir, file), file).map((r, i) => ({
    id: String(i),
    question: String(r.question),
    solution: String(r.answer),
    gold: requireGold(gsm8kGold(String(r.answer)), `${file} row ${i}`),
  }));
}

/** Loads SVAMP; ids are its `ID` fields, the question is Body + Question. */
export function loadSvamp(dataDir: string, file = 'svamp/SVAMP.json'): MathProblem[] {
  let rows: unknown;
  try {
    rows = JSON.parse(readDataFile(dataDir, file));
  } catch (e) {
    if (e instanceof YuanError) throw e;
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(rows)) throw new YuanError('input', `${file}: expected a JSON array of problems`);
  return rows.map((r: Record<string, unknown>, i) => ({
    id: String(r.ID ?? i),
    question: `${String(r.Body).trim()} ${String(r.Question).trim()}`,
    gold: requireGold(normalizeNumber(String(r.Answer)), `${file} item ${i}`),
  }));
}

/** GSM8K: grade-school math, greedy accuracy and maj@k self-consistency. */
export const gsm8kEvaluator = mathEvaluator('gsm8k', 'GSM8K accuracy and maj@k self-consistency', (d) => loadGsm8k(d));

/** SVAMP: arithmetic word problems, scored like GSM8K. */
export const svampEvaluator = mathEvaluator('svamp', 'SVAMP accuracy and maj@k self-consistency', (d) => loadSvamp(d));
