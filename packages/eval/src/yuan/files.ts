import JSON5 from 'json5';
import { readDataFile } from '../data/files.js';

/** Where YUAN 2.0's own evaluation files sit under the data folder (`../shared/datasets/yuan-eval`). */
export const YUAN_DIR = 'yuan-eval';

/** A data line that could not be used: its 0-based record index and why. Counted and reported, never fatal. */
export interface BadLine {
  index: number;
  reason: string;
}

/** Records of a data file with the lines that were skipped. */
export interface Loaded<T> {
  items: T[];
  bad: BadLine[];
}

/** One `question[SEP]answer` record; `id` is its 0-based record (line) index in the file. */
export interface SepRecord {
  id: string;
  question: string;
  answer: string;
}

/** YUAN's files and outputs write newlines as `<n>`: turns them (and `\r\n`) into `\n`. */
export function fromYuanText(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/<n>/g, '\n');
}

/** The other way: `\n` → `<n>`, as YUAN's scorers see a completion. */
export function toYuanText(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/\n/g, '<n>');
}

/**
 * Reads a YUAN `question[SEP]answer` file (gsm8k_*.txt, mathqa.txt, mathcloze.txt): one record per line, the last line
 * possibly without a newline. A blank line, a line without exactly one `[SEP]`, or an empty side is skipped and
 * listed in `bad` (ids keep counting lines, so they stay the file's record indexes). A missing file throws NotFoundError.
 */
export function loadSepFile(dataDir: string, file: string): Loaded<SepRecord> {
  const text = readDataFile(dataDir, `${YUAN_DIR}/${file}`);
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const items: SepRecord[] = [];
  const bad: BadLine[] = [];
  lines.forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    const parts = line.split('[SEP]');
    if (parts.length !== 2) {
      bad.push({ index, reason: line.trim() === '' ? 'blank line' : `expected one [SEP], found ${parts.length - 1}` });
      return;
    }
    const [question, answer] = [parts[0]!.trim(), parts[1]!.trim()];
    if (question === '' || answer === '') {
      bad.push({ index, reason: question === '' ? 'empty question' : 'empty answer' });
      return;
    }
    items.push({ id: String(index), question, answer });
  });
  return { items, bad };
}

/**
 * Reads a file of one Python-literal dict per line (TruthfulQA_CN.json: single-quoted strings), parsed as JSON5,
 * which accepts Python's quoting of strings; a line that does not parse to an object is skipped into `bad`.
 */
export function loadPythonDictLines(
  dataDir: string,
  file: string,
): Loaded<{ id: string; row: Record<string, unknown> }> {
  const lines = readDataFile(dataDir, `${YUAN_DIR}/${file}`).split('\n');
  if (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  const items: { id: string; row: Record<string, unknown> }[] = [];
  const bad: BadLine[] = [];
  lines.forEach((line, index) => {
    let row: unknown;
    try {
      row = JSON5.parse(line);
    } catch (e) {
      bad.push({ index, reason: `not a Python dict literal (${(e as Error).message})` });
      return;
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      bad.push({ index, reason: 'not a dict' });
      return;
    }
    items.push({ id: String(index), row: row as Record<string, unknown> });
  });
  return { items, bad };
}

/** A short report of skipped lines for a result's details: the count and the first five. */
export function badSummary(file: string, bad: BadLine[]): Record<string, unknown> {
  if (bad.length === 0) return {};
  return {
    skipped_lines: bad.length,
    skipped: `${file}: ${bad
      .slice(0, 5)
      .map((b) => `record ${b.index}: ${b.reason}`)
      .join('; ')}${bad.length > 5 ? '; ...' : ''}`,
  };
}
