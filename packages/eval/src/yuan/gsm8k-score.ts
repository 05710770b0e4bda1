import { escapeRegExp } from '@yuan/core';
import { toYuanText } from './files.js';

// Characters that may not follow a number for it to count as a whole answer (score_gsm8k.py's look-ahead set).
const NOT_AFTER = 'xyzXYZ\\d.+\\-*/=()√₀²³‰¼½¾_×¬^,!:±÷∶∧∨∑∏∪∷≡≠><≤≥';
const CANDIDATE = new RegExp(
  `(?:[-+]?\\d+\\.?\\d+/\\d+\\.?\\d+|[-+]?\\d+/\\d+|[-+]?\\d+\\.\\d+|\\d{1,5}(?:,\\d{3})+(?:\\.\\d+)*?|[-+]?\\d+)(?![${NOT_AFTER.replace('.', '')}])`,
  'g',
);

const hasDigit = (s: string) => /\d/.test(s);

/** `\frac{a}{b}` / `\dfrac{a}{b}` of plain numbers → `a/b` (left alone when three closing braces follow one another). */
function fractionsToSlash(text: string): string {
  if (!text.includes('frac') || /(?:\s*\}){3,}/.test(text)) return text;
  return text.replace(/\\d?frac\{([\d,.]+)\}\{([\d,.]+)\}/g, '$1/$2');
}

function numericValue(text: string): number {
  const t = text.replace(/[, ]/g, '');
  if (t.includes('/')) {
    const [a, b] = t.split('/');
    return Number(a) / Number(b);
  }
  return Number(t);
}

/** What YUAN's GSM8K scorer looked at in a completion: the answer segment and its candidate numbers. */
export interface YuanGsm8kVerdict {
  correct: boolean;
  /** The last candidate number of the answer segment (what a majority vote counts), or null. */
  answer: string | null;
  /** The text after the last `=` of the answer line. */
  segment: string;
}

/**
 * Scores a GSM8K completion the way `tasks/GSM8K/score_gsm8k.py` of YUAN 2.0 does (YUAN2-SPEC §7): newlines are read
 * as `<n>`; `\boxed{N}`, `$`, spaces and `\!`, `\;`, `\,` are stripped (and, beyond the script, thin and no-break spaces; `{,}`
 * between digits reads as a comma), `≈` becomes `=`; the answer line is the last
 * `<n>`-separated line (the one before it, or the one before that, when it has no digit) and the segment is its text
 * after the last `=`, with `\frac{a}{b}` → `a/b`. Correct when the gold appears there as a whole number, or (when the
 * last line has no `=`) in the previous line's tail while the segment holds no number, or when any of the last three
 * numbers of the segment equals the gold as a float. `answer` (what a majority vote counts) is the gold's value when correct, else the segment's last number.
 */
export function scoreYuanGsm8k(completion: string, gold: string): YuanGsm8kVerdict {
  let text = toYuanText(completion.trim()).replace(/(?:\s*<n>\s*)+$/, '');
  text = text.replace(/\\boxed\{\s*([\d.,/]+)\s*\}\.?/g, '$1');
  const all = text
    .replace(/<br>/g, '<n>')
    .replace(/\\[!;,]/g, '')
    .replace(/(?<=\d)\{,\}(?=\d)/g, ',')
    .replace(/\$\$/g, ' ')
    .replace(/\$/g, '')
    .replace(/[ \u00a0\u2007\u2009\u200a\u202f]/g, '')
    .replace(/≈/g, '=');
  const lines = all.split('<n>');
  let end: string;
  let end2 = '';
  if (lines.length > 1) {
    end = lines[lines.length - 1]!;
    if (!end.includes('=')) end2 = `<n>${lines[lines.length - 2]!.split('=').pop()}`;
    if (end && !hasDigit(end)) end = lines[lines.length - 2]!;
    if (end && !hasDigit(end) && lines.length > 2) end = lines[lines.length - 3]!;
  } else {
    end = all;
  }
  end = fractionsToSlash(`<n>${end.split('=').pop()}`.replace(/\\%/g, '%'));
  const goldText = gold.replace(/ /g, '');
  const whole = new RegExp(`(?<=[^0-9+\\-*/])${escapeRegExp(goldText)}(?![${NOT_AFTER}])`);
  const candidates = end.match(CANDIDATE) ?? [];
  const answer = candidates.length ? String(numericValue(candidates[candidates.length - 1]!)) : null;
  if (whole.test(end)) return { correct: true, answer: String(numericValue(goldText)), segment: end.slice(3) };
  if (end2 && candidates.length === 0 && whole.test(fractionsToSlash(end2))) {
    return { correct: true, answer: String(numericValue(goldText)), segment: end.slice(3) };
  }
  const goldValue = numericValue(goldText);
  const lastThree = candidates.slice(-3).reverse();
  const correct = lastThree.some((c) => numericValue(c) === goldValue);
  return { correct, answer: correct ? String(goldValue) : answer, segment: end.slice(3) };
}
