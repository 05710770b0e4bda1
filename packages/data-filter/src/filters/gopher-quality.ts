import { arrayOf, num, obj, str } from '@yuan/core';
import { analyze } from '../text/analysis.js';
import { coreLength, isLetter } from '../text/chars.js';
import { coreLowerOfWord, WORD_ROW, WordNumbers } from '../text/words.js';
import { endsWithEllipsis, startsWithBullet } from '../text/punct.js';
import { defineFilter } from './define.js';

/** Options of `gopher-quality` (defaults from Rae et al. 2021, "Scaling Language Models", appendix A). */
export interface GopherQualityOptions {
  /** Word count bounds; for CJK text each Han or kana character is a word. Default 50 and 100,000. */
  minWords: number;
  maxWords: number;
  /** Mean word length bounds (characters, punctuation stripped); not applied to CJK text. Default 3 and 10. */
  minMeanWordLength: number;
  maxMeanWordLength: number;
  /** Maximum ratio of `#` and ellipsis occurrences to words. Default 0.1. */
  maxSymbolWordRatio: number;
  /** Maximum share of lines starting with a bullet. Default 0.9. */
  maxBulletLines: number;
  /** Maximum share of lines ending with an ellipsis. Default 0.3. */
  maxEllipsisLines: number;
  /** Minimum share of words containing a letter. Default 0.8. */
  minAlphaWords: number;
  /** At least this many stop-word occurrences, from `stopWords` (English text) or `cjkStopWords` (CJK). Default 2. */
  minStopWords: number;
  /** English stop words of the Gopher rule. Default the, be, to, of, and, that, have, with. */
  stopWords: string[];
  /** Chinese function characters used instead for CJK text. Default 的 了 是 在 和 有 不 这 也 就 与 而 之 我 他 们 中 为 以. */
  cjkStopWords: string[];
}

/** Per distinct word: its core length (bits 0-29), whether it has a letter (bit 30). */
const wordFacts = new WordNumbers((w) => {
  let letter = 0;
  let ascii = true;
  for (let i = 0; i < w.length && ascii; i++) {
    const c = w.charCodeAt(i);
    if (c >= 128) ascii = false;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) {
      letter = 1;
      break;
    }
  }
  // Other scripts: by code point (a letter outside the BMP is a surrogate pair).
  if (!ascii) {
    for (const ch of w) {
      if (isLetter(ch)) {
        letter = 1;
        break;
      }
    }
  }
  return coreLength(w) | (letter << 30);
});
const CORE_LENGTH = (1 << 30) - 1;

/** Stop-word membership per distinct word, one per word list and kind (filters built with the same list share it). */
const stopWordTables = new Map<string, WordNumbers>();

/**
 * Per distinct word: 1 if it is one of `list`, else 0. `byCore`: compare the word's lower-cased core with the list
 * lower-cased (English); otherwise the word itself (CJK).
 */
function stopWordNumbers(list: string[], byCore: boolean): WordNumbers {
  const key = `${byCore ? 'core' : 'word'}\u0000${list.join('\u0000')}`;
  let table = stopWordTables.get(key);
  if (!table) {
    const set = new Set(byCore ? list.map((w) => w.toLowerCase()) : list);
    table = byCore
      ? new WordNumbers((_, id) => (set.has(coreLowerOfWord.get(id)) ? 1 : 0))
      : new WordNumbers((w) => (set.has(w) ? 1 : 0));
    stopWordTables.set(key, table);
  }
  return table;
}

/** Number of non-overlapping occurrences of `sep` in `text` (what `text.split(sep).length - 1` counts). */
function occurrences(text: string, sep: string): number {
  let n = 0;
  for (let at = text.indexOf(sep); at >= 0; at = text.indexOf(sep, at + sep.length)) n++;
  return n;
}

/** Gopher document-quality rules, CJK-aware: counts characters for Chinese, uses Chinese function words, skips code. */
export const gopherQualityFilter = defineFilter<GopherQualityOptions>({
  name: 'gopher-quality',
  description:
    'Gopher quality rules: word count, mean word length, symbol ratio, bullets, ellipses, alphabetic words, stop words',
  defaults: {
    minWords: 50,
    maxWords: 100_000,
    minMeanWordLength: 3,
    maxMeanWordLength: 10,
    maxSymbolWordRatio: 0.1,
    maxBulletLines: 0.9,
    maxEllipsisLines: 0.3,
    minAlphaWords: 0.8,
    minStopWords: 2,
    stopWords: ['the', 'be', 'to', 'of', 'and', 'that', 'have', 'with'],
    cjkStopWords: [
      '的',
      '了',
      '是',
      '在',
      '和',
      '有',
      '不',
      '这',
      '也',
      '就',
      '与',
      '而',
      '之',
      '我',
      '他',
      '们',
      '中',
      '为',
      '以',
    ],
  },
  schema: obj({
    minWords: num({ int: true, min: 0 }),
    maxWords: num({ int: true, min: 1 }),
    minMeanWordLength: num({ min: 0 }),
    maxMeanWordLength: num({ gt: 0 }),
    maxSymbolWordRatio: num({ min: 0 }),
    maxBulletLines: num({ min: 0, max: 1 }),
    maxEllipsisLines: num({ min: 0, max: 1 }),
    minAlphaWords: num({ min: 0, max: 1 }),
    minStopWords: num({ int: true, min: 0 }),
    stopWords: arrayOf(str()),
    cjkStopWords: arrayOf(str()),
  }),
  create(o) {
    const isStop = stopWordNumbers(o.stopWords, true);
    const isCjkStop = stopWordNumbers(o.cjkStopWords, false);
    return {
      apply(doc) {
        if (doc.lang === 'code') return { keep: true };
        const a = analyze(doc);
        const ids = a.ids;
        const n = ids.length;
        if (n < o.minWords) return { keep: false, reason: 'too-few-words', detail: `${n} < ${o.minWords}` };
        if (n > o.maxWords) return { keep: false, reason: 'too-many-words', detail: `${n} > ${o.maxWords}` };
        const facts = wordFacts.table();
        const column = wordFacts.column;
        if (!a.cjk) {
          let letters = 0;
          let counted = 0;
          for (let i = 0; i < n; i++) {
            const len = facts[ids[i] * WORD_ROW + column] & CORE_LENGTH;
            if (len) {
              letters += len;
              counted++;
            }
          }
          const mean = counted ? letters / counted : 0;
          if (mean < o.minMeanWordLength || mean > o.maxMeanWordLength) {
            return {
              keep: false,
              reason: 'mean-word-length',
              detail: `${mean.toFixed(2)} outside [${o.minMeanWordLength}, ${o.maxMeanWordLength}]`,
            };
          }
        }
        const hashes = occurrences(a.text, '#');
        const ellipses = occurrences(a.text, '...') + occurrences(a.text, '…');
        const symbolRatio = (hashes + ellipses) / n;
        if (symbolRatio > o.maxSymbolWordRatio)
          return { keep: false, reason: 'symbol-ratio', detail: `${symbolRatio.toFixed(3)} > ${o.maxSymbolWordRatio}` };
        // The non-blank lines, trimmed (a bullet may follow leading space, an ellipsis trailing space: same tests).
        const lines = a.trimmedLines;
        if (lines.length > 0) {
          let bulletLines = 0;
          let ellipsisEnds = 0;
          for (const l of lines) {
            if (startsWithBullet(l)) bulletLines++;
            if (endsWithEllipsis(l)) ellipsisEnds++;
          }
          const bullets = bulletLines / lines.length;
          if (bullets > o.maxBulletLines)
            return { keep: false, reason: 'bullet-lines', detail: `${bullets.toFixed(3)} > ${o.maxBulletLines}` };
          const ellipsisLines = ellipsisEnds / lines.length;
          if (ellipsisLines > o.maxEllipsisLines)
            return {
              keep: false,
              reason: 'ellipsis-lines',
              detail: `${ellipsisLines.toFixed(3)} > ${o.maxEllipsisLines}`,
            };
        }
        let alpha = 0;
        for (let i = 0; i < n; i++) if (facts[ids[i] * WORD_ROW + column] >> 30) alpha++;
        const alphaShare = alpha / n;
        if (alphaShare < o.minAlphaWords)
          return { keep: false, reason: 'alpha-words', detail: `${alphaShare.toFixed(3)} < ${o.minAlphaWords}` };
        if (a.cjk || doc.lang === 'en' || doc.lang === undefined) {
          let hits = 0;
          const stop = a.cjk ? isCjkStop : isStop;
          const stops = stop.table();
          const stopColumn = stop.column;
          for (let i = 0; i < n; i++) {
            if (stops[ids[i] * WORD_ROW + stopColumn]) {
              if (++hits >= o.minStopWords) break;
            }
          }
          if (hits < o.minStopWords)
            return {
              keep: false,
              reason: 'stop-words',
              detail: `${hits} < ${o.minStopWords} ${a.cjk ? 'CJK ' : ''}stop words`,
            };
        }
        return { keep: true };
      },
    };
  },
});
