import { num, obj } from '@yuan/core';
import { analyze } from '../text/analysis.js';
import { codePointCount } from '../text/chars.js';
import { endsWithTerminal } from '../text/punct.js';
import { defineFilter } from './define.js';

/** Options of `fineweb` (the FineWeb custom filters, Penedo et al. 2024). */
export interface FineWebOptions {
  /** Minimum share of lines ending in terminal punctuation. Default 0.12. */
  minTerminalPunctLines: number;
  /** Maximum share of short lines. Default 0.67. */
  maxShortLines: number;
  /** A line with at most this many characters is short. Default 30; for CJK text `cjkShortLineChars`. */
  shortLineChars: number;
  /** Short-line length for CJK text (a CJK character carries about two Latin characters' worth). Default 15. */
  cjkShortLineChars: number;
  /** Maximum share of characters in lines that repeat an earlier line. Default 0.01. */
  maxDupLineChars: number;
  /** Maximum ratio of newlines to words. Default 0.3. */
  maxNewlinesPerWord: number;
  /**
   * The share-of-lines rules (terminal punctuation, short lines) need at least this many non-empty lines: for one
   * paragraph a share is 0 or 1 and says nothing about the page. Default 3.
   */
  minLinesForLineRules: number;
}

/** FineWeb rules: terminal-punctuation lines, short lines, duplicated-line characters, newlines per word; skips code. */
export const finewebFilter = defineFilter<FineWebOptions>({
  name: 'fineweb',
  description:
    'FineWeb rules: share of lines with terminal punctuation, short lines, duplicated-line characters, newlines per word',
  defaults: {
    minTerminalPunctLines: 0.12,
    maxShortLines: 0.67,
    shortLineChars: 30,
    cjkShortLineChars: 15,
    maxDupLineChars: 0.01,
    maxNewlinesPerWord: 0.3,
    minLinesForLineRules: 3,
  },
  schema: obj({
    minTerminalPunctLines: num({ min: 0, max: 1 }),
    maxShortLines: num({ min: 0, max: 1 }),
    shortLineChars: num({ int: true, min: 0 }),
    cjkShortLineChars: num({ int: true, min: 0 }),
    maxDupLineChars: num({ min: 0, max: 1 }),
    maxNewlinesPerWord: num({ gt: 0 }),
    minLinesForLineRules: num({ int: true, min: 1 }),
  }),
  create(o) {
    return {
      apply(doc) {
        if (doc.lang === 'code') return { keep: true };
        const a = analyze(doc);
        const lines = a.trimmedLines;
        if (lines.length === 0) return { keep: true };
        if (lines.length >= o.minLinesForLineRules) {
          let terminal = 0;
          for (const l of lines) if (endsWithTerminal(l)) terminal++;
          const punct = terminal / lines.length;
          if (punct < o.minTerminalPunctLines)
            return {
              keep: false,
              reason: 'terminal-punct-lines',
              detail: `${punct.toFixed(3)} < ${o.minTerminalPunctLines}`,
            };
          const shortLen = a.cjk ? o.cjkShortLineChars : o.shortLineChars;
          let shortLines = 0;
          for (const l of lines) if (codePointCount(l) <= shortLen) shortLines++;
          const short = shortLines / lines.length;
          if (short > o.maxShortLines)
            return { keep: false, reason: 'short-lines', detail: `${short.toFixed(3)} > ${o.maxShortLines}` };
        }
        const dup = a.lineDuplicates.chars;
        if (dup > o.maxDupLineChars)
          return { keep: false, reason: 'dup-line-chars', detail: `${dup.toFixed(3)} > ${o.maxDupLineChars}` };
        const newlines = a.lines.length - 1;
        const ratio = a.ids.length ? newlines / a.ids.length : 0;
        if (ratio > o.maxNewlinesPerWord)
          return { keep: false, reason: 'newlines-per-word', detail: `${ratio.toFixed(3)} > ${o.maxNewlinesPerWord}` };
        return { keep: true };
      },
    };
  },
});
