import { arrayOf, bool, num, obj, str } from '@yuan/core';
import { analyze } from '../text/analysis.js';
import { isCjkWordId } from '../text/words.js';
import { countSentences, endsWithTerminal } from '../text/punct.js';
import { defineFilter } from './define.js';

/** Options of `c4` (rules of Raffel et al. 2020, §2.2, as datatrove and FineWeb apply them). */
export interface C4Options {
  /** Remove lines containing "javascript" (e.g. "please enable JavaScript"). Default true. */
  removeJavascriptLines: boolean;
  /** Remove lines containing one of `policyPhrases` (cookie notices, terms of use). Default true. */
  removePolicyLines: boolean;
  /** Lower-cased phrases that mark a boilerplate policy line. Default the C4 list plus Chinese equivalents. */
  policyPhrases: string[];
  /** Remove lines that do not end in terminal punctuation. Default false (FineWeb turned this C4 rule off). */
  removeNoTerminalPunctLines: boolean;
  /** Remove lines with fewer words than this (a CJK character is a word). Default 3. */
  minWordsPerLine: number;
  /** Remove lines containing a word longer than this. Default 1000. */
  maxWordLength: number;
  /** Drop documents containing "lorem ipsum". Default true. */
  dropLoremIpsum: boolean;
  /** Drop documents containing `{` (C4's code filter; off by default because it also drops math). Default false. */
  dropCurlyBracket: boolean;
  /** Drop documents with fewer sentences than this after line removal. Default 5 (C4); for CJK text `cjkMinSentences`. */
  minSentences: number;
  /** Minimum sentences for CJK text. Default 3. */
  cjkMinSentences: number;
  /**
   * The sentence minimums are page rules: they apply to documents with at least this many non-empty lines. A shorter
   * document (one paragraph, or a title and a paragraph) needs `paragraphMinSentences`. Default 3.
   */
  pageMinLines: number;
  /** Minimum sentences of a document with fewer than `pageMinLines` lines (any language). Default 1. */
  paragraphMinSentences: number;
}

/** C4 rules: line-level removal of boilerplate, then lorem-ipsum, curly-bracket and sentence-count checks; skips code. */
export const c4Filter = defineFilter<C4Options>({
  name: 'c4',
  description: 'C4 rules: removes javascript/policy/short lines, drops lorem ipsum and documents with too few sentences',
  defaults: {
    removeJavascriptLines: true,
    removePolicyLines: true,
    policyPhrases: ['terms of use', 'privacy policy', 'cookie policy', 'uses cookies', 'use of cookies', 'use cookies', '隐私政策', '使用条款', '服务条款', '使用cookie', 'cookie政策'],
    removeNoTerminalPunctLines: false,
    minWordsPerLine: 3,
    maxWordLength: 1000,
    dropLoremIpsum: true,
    dropCurlyBracket: false,
    minSentences: 5,
    cjkMinSentences: 3,
    pageMinLines: 3,
    paragraphMinSentences: 1,
  },
  schema: obj({
    removeJavascriptLines: bool(),
    removePolicyLines: bool(),
    policyPhrases: arrayOf(str()),
    removeNoTerminalPunctLines: bool(),
    minWordsPerLine: num({ int: true, min: 0 }),
    maxWordLength: num({ int: true, min: 1 }),
    dropLoremIpsum: bool(),
    dropCurlyBracket: bool(),
    minSentences: num({ int: true, min: 0 }),
    cjkMinSentences: num({ int: true, min: 0 }),
    pageMinLines: num({ int: true, min: 1 }),
    paragraphMinSentences: num({ int: true, min: 0 }),
  }),
  create(o) {
    const phrases = o.policyPhrases.map((p) => p.toLowerCase());
    return {
      apply(doc) {
        if (doc.lang === 'code') return { keep: true };
        const lower = doc.text.toLowerCase();
        if (o.dropLoremIpsum && lower.includes('lorem ipsum')) return { keep: false, reason: 'lorem-ipsum' };
        if (o.dropCurlyBracket && doc.text.includes('{')) return { keep: false, reason: 'curly-bracket' };
        const edits: Record<string, number> = {};
        const kept: string[] = [];
        let cjkChars = 0;
        let words = 0;
        let keptLines = 0;
        // A line's lower-case form is its part of the text's (lower-casing does not look across a newline), so when the
        // whole text has no JavaScript or policy phrase, no line has one.
        const lineChecks = (o.removeJavascriptLines && lower.includes('javascript')) || (o.removePolicyLines && phrases.some((p) => lower.includes(p)));
        // Word tokens never cross a newline: each line's words are the text's tokens inside it.
        const a = analyze(doc);
        const { ids, starts, ends } = a;
        let t = 0;
        let lineStart = 0;
        const lines = a.lines;
        for (const line of lines) {
          const lineEnd = lineStart + line.length;
          lineStart = lineEnd + 1;
          if (line.trim() === '') {
            kept.push(line);
            continue;
          }
          while (t < ids.length && starts[t] < lineEnd - line.length) t++;
          let why: string | undefined;
          const l = lineChecks ? line.toLowerCase() : '';
          if (lineChecks && o.removeJavascriptLines && l.includes('javascript')) why = 'javascript-line';
          else if (lineChecks && o.removePolicyLines && phrases.some((p) => l.includes(p))) why = 'policy-line';
          else if (o.removeNoTerminalPunctLines && !endsWithTerminal(line)) why = 'no-terminal-punct-line';
          else {
            let n = 0;
            let cjk = 0;
            let long = false;
            for (let u = t; u < ids.length && ends[u] <= lineEnd; u++) {
              n++;
              if (isCjkWordId(ids[u])) cjk++;
              if (ends[u] - starts[u] > o.maxWordLength) long = true;
            }
            if (n < o.minWordsPerLine) why = 'short-line';
            else if (long) why = 'long-word-line';
            else {
              cjkChars += cjk;
              words += n;
            }
          }
          if (why) edits[why] = (edits[why] ?? 0) + 1;
          else {
            kept.push(line);
            keptLines++;
          }
        }
        const text = (kept.length === lines.length ? doc.text : kept.join('\n')).replace(/\n{3,}/g, '\n\n').trim();
        if (text === '') return { keep: false, reason: 'no-lines-left' };
        const cjk = doc.lang === 'zh' || doc.lang === 'ja' || (doc.lang === undefined && words > 0 && cjkChars / words >= 0.5);
        const min = keptLines < o.pageMinLines ? o.paragraphMinSentences : cjk ? o.cjkMinSentences : o.minSentences;
        const sentences = countSentences(text);
        if (sentences < min) return { keep: false, reason: 'too-few-sentences', detail: `${sentences} < ${min}` };
        if (Object.keys(edits).length === 0) return { keep: true };
        doc.text = text;
        return { keep: true, edits };
      },
    };
  },
});
