import { num, obj, record } from '@yuan/core';
import { analyze } from '../text/analysis.js';
import { duplicateShares, NgramCandidates, wordIdsOfScan } from '../text/repetition.js';
import { defineFilter } from './define.js';

/** Options of `gopher-repetition` (defaults from Rae et al. 2021, table A1). */
export interface GopherRepetitionOptions {
  /** Maximum share of lines that repeat an earlier line. Default 0.3. */
  maxDupLines: number;
  /** Maximum share of paragraphs (separated by blank lines) that repeat an earlier one. Default 0.3. */
  maxDupParagraphs: number;
  /** Maximum share of characters in repeated lines. Default 0.2. */
  maxDupLineChars: number;
  /** Maximum share of characters in repeated paragraphs. Default 0.2. */
  maxDupParagraphChars: number;
  /** n → maximum share of characters in the most frequent n-gram. Default {2: 0.2, 3: 0.18, 4: 0.16}. */
  topNgrams: Record<string, number>;
  /** n → maximum share of characters in repeated n-grams. Default {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.1}. */
  dupNgrams: Record<string, number>;
  /** For CJK text (a word is one character) n-gram sizes are multiplied by this. Default 2. */
  cjkNgramScale: number;
}

function ngramTable(value: unknown, path: string): Record<string, number> {
  const r = record().parse(value, path);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) {
    num({ int: true, min: 1 }).parse(Number(k), `${path} key ${k}`);
    out[k] = num({ min: 0, max: 1 }).parse(v, `${path}.${k}`);
  }
  return out;
}

const NO_REPEATS = { items: 0, chars: 0 };
const PARAGRAPH_BREAK = /\n\s*\n/;

/** Gopher repetition rules over lines, paragraphs and word n-grams (character n-grams for CJK text); skips code. */
export const gopherRepetitionFilter = defineFilter<GopherRepetitionOptions>({
  name: 'gopher-repetition',
  description:
    'Gopher repetition rules: duplicate lines and paragraphs (count and characters), top and duplicate n-gram shares',
  defaults: {
    maxDupLines: 0.3,
    maxDupParagraphs: 0.3,
    maxDupLineChars: 0.2,
    maxDupParagraphChars: 0.2,
    topNgrams: { 2: 0.2, 3: 0.18, 4: 0.16 },
    dupNgrams: { 5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.1 },
    cjkNgramScale: 2,
  },
  schema: {
    expected: 'gopher-repetition options',
    parse(value, path) {
      const o = obj({
        maxDupLines: num({ min: 0, max: 1 }),
        maxDupParagraphs: num({ min: 0, max: 1 }),
        maxDupLineChars: num({ min: 0, max: 1 }),
        maxDupParagraphChars: num({ min: 0, max: 1 }),
        topNgrams: record(),
        dupNgrams: record(),
        cjkNgramScale: num({ int: true, min: 1 }),
      }).parse(value, path);
      return {
        ...o,
        topNgrams: ngramTable(o.topNgrams, `${path}.topNgrams`),
        dupNgrams: ngramTable(o.dupNgrams, `${path}.dupNgrams`),
      };
    },
  },
  create(o) {
    const top = Object.entries(o.topNgrams)
      .map(([n, max]) => [Number(n), max] as const)
      .sort((a, b) => a[0] - b[0]);
    const dup = Object.entries(o.dupNgrams)
      .map(([n, max]) => [Number(n), max] as const)
      .sort((a, b) => a[0] - b[0]);
    // One pass over n = 1, 2, ...: each check at its n (top checks first when both kinds name the same n).
    const checks = [
      ...top.map(([n, m]) => [n, m, 'top'] as const),
      ...dup.map(([n, m]) => [n, m, 'dup'] as const),
    ].sort((a, b) => a[0] - b[0] || (a[2] < b[2] ? 1 : -1));
    return {
      apply(doc) {
        if (doc.lang === 'code') return { keep: true };
        const a = analyze(doc);
        // A paragraph break needs two newlines: with fewer, or none with only white space between, there is at most one
        // paragraph and no repeat.
        const nl = a.text.indexOf('\n');
        const pd =
          nl < 0 || a.text.indexOf('\n', nl + 1) < 0 || !PARAGRAPH_BREAK.test(a.text)
            ? NO_REPEATS
            : duplicateShares(
                a.text
                  .split(/\n\s*\n/)
                  .map((p) => p.trim())
                  .filter((p) => p !== ''),
              );
        if (pd.items > o.maxDupParagraphs)
          return { keep: false, reason: 'dup-paragraphs', detail: `${pd.items.toFixed(3)} > ${o.maxDupParagraphs}` };
        if (pd.chars > o.maxDupParagraphChars)
          return {
            keep: false,
            reason: 'dup-paragraph-chars',
            detail: `${pd.chars.toFixed(3)} > ${o.maxDupParagraphChars}`,
          };
        const ld = a.lineDuplicates;
        if (ld.items > o.maxDupLines)
          return { keep: false, reason: 'dup-lines', detail: `${ld.items.toFixed(3)} > ${o.maxDupLines}` };
        if (ld.chars > o.maxDupLineChars)
          return { keep: false, reason: 'dup-line-chars', detail: `${ld.chars.toFixed(3)} > ${o.maxDupLineChars}` };
        const scale = a.cjk ? o.cjkNgramScale : 1;
        const w = wordIdsOfScan(a.ids, a.starts, a.ends);
        const keys = new NgramCandidates(w, w.distinct);
        for (const [n, max, kind] of checks) {
          while (keys.n < n * scale) keys.advance();
          // No position left whose n-gram repeats: every later share is 0.
          if (keys.count === 0 || keys.candidates === 0) break;
          const share = kind === 'top' ? keys.topShare() : keys.duplicateShare();
          if (share > max) return { keep: false, reason: `${kind}-${n}gram`, detail: `${share.toFixed(3)} > ${max}` };
        }
        return { keep: true };
      },
    };
  },
});
