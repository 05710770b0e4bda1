import { arrayOf, bool, num, obj, str, type FilterDocument } from '@yuan/core';
import { adoptLinesAnalysis, analyze, type TextAnalysis } from '../text/analysis.js';
import { isCjkWordId } from '../text/words.js';
import { LowerCasePhrases } from '../text/phrases.js';
import { countSentences, endsWithTerminal, isBlank } from '../text/punct.js';
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

/** Per kept line of the document in `c4`: its length, its offset in the text, its first token and the one after its last. */
let keptInfo = new Int32Array(1024);
let parts = new Int32Array(768);

/**
 * Gives the document the analysis of its new text `text` (= `squashed.trim()`, `squashed` the kept lines joined by
 * newlines with runs of 3 or more newlines made 2) from the analysis `a` of the text it was cut from, without scanning
 * it again (see adoptLinesAnalysis). `keptInfo` describes the `count` kept lines.
 */
function reuseAnalysis(
  doc: FilterDocument,
  a: TextAnalysis,
  squashed: string,
  text: string,
  count: number,
  cjkChars: number,
): void {
  const lead = squashed.length - squashed.trimStart().length;
  const tail = squashed.length - lead - text.length;
  // trim() removes U+FEFF, which does not separate word tokens: then the tokens at the two ends may change.
  if (
    (lead > 0 && squashed.slice(0, lead).includes('\ufeff')) ||
    (tail > 0 && squashed.slice(squashed.length - tail).includes('\ufeff'))
  )
    return;
  if (parts.length < 3 * count) parts = new Int32Array(Math.max(3 * count, 2 * parts.length));
  let n = 0;
  let pos = 0;
  let run = 0;
  for (let j = 0; j < count; j++) {
    if (j > 0) run++;
    const len = keptInfo[4 * j];
    if (len === 0) continue;
    pos += run >= 3 ? 2 : run;
    run = 0;
    if (keptInfo[4 * j + 3] > keptInfo[4 * j + 2]) {
      parts[3 * n] = keptInfo[4 * j + 2];
      parts[3 * n + 1] = keptInfo[4 * j + 3];
      parts[3 * n + 2] = pos - lead - keptInfo[4 * j + 1];
      n++;
    }
    pos += len;
  }
  adoptLinesAnalysis(doc, a, text, parts, n, cjkChars);
}

/** C4 rules: line-level removal of boilerplate, then lorem-ipsum, curly-bracket and sentence-count checks; skips code. */
export const c4Filter = defineFilter<C4Options>({
  name: 'c4',
  description:
    'C4 rules: removes javascript/policy/short lines, drops lorem ipsum and documents with too few sentences',
  defaults: {
    removeJavascriptLines: true,
    removePolicyLines: true,
    policyPhrases: [
      'terms of use',
      'privacy policy',
      'cookie policy',
      'uses cookies',
      'use of cookies',
      'use cookies',
      '隐私政策',
      '使用条款',
      '服务条款',
      '使用cookie',
      'cookie政策',
    ],
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
    const searched = new LowerCasePhrases([
      ...(o.dropLoremIpsum ? ['lorem ipsum'] : []),
      ...(o.removeJavascriptLines ? ['javascript'] : []),
      ...(o.removePolicyLines ? phrases : []),
    ]);
    return {
      apply(doc) {
        if (doc.lang === 'code') return { keep: true };
        const lower = searched.lowerIfAny(doc.text);
        if (o.dropLoremIpsum && lower.includes('lorem ipsum')) return { keep: false, reason: 'lorem-ipsum' };
        if (o.dropCurlyBracket && doc.text.includes('{')) return { keep: false, reason: 'curly-bracket' };
        let edits: Record<string, number> | undefined;
        const kept: string[] = [];
        let cjkChars = 0;
        let words = 0;
        let keptLines = 0;
        // A line's lower-case form is its part of the text's (lower-casing does not look across a newline), so when the
        // whole text has no JavaScript or policy phrase, no line has one.
        const lineChecks =
          (o.removeJavascriptLines && lower.includes('javascript')) ||
          (o.removePolicyLines && phrases.some((p) => lower.includes(p)));
        // Word tokens never cross a newline: each line's words are the text's tokens inside it.
        const a = analyze(doc);
        const { ids, starts, ends } = a;
        let t = 0;
        let lineStart = 0;
        const lines = a.lines;
        if (keptInfo.length < 4 * lines.length)
          keptInfo = new Int32Array(Math.max(4 * lines.length, 2 * keptInfo.length));
        const info = keptInfo;
        for (const line of lines) {
          const lineEnd = lineStart + line.length;
          lineStart = lineEnd + 1;
          if (isBlank(line)) {
            info[4 * kept.length] = line.length;
            info[4 * kept.length + 2] = 0;
            info[4 * kept.length + 3] = 0;
            kept.push(line);
            continue;
          }
          while (t < ids.length && starts[t] < lineEnd - line.length) t++;
          let why: string | undefined;
          let tokensEnd = t;
          const l = lineChecks ? line.toLowerCase() : '';
          if (lineChecks && o.removeJavascriptLines && l.includes('javascript')) why = 'javascript-line';
          else if (lineChecks && o.removePolicyLines && phrases.some((p) => l.includes(p))) why = 'policy-line';
          else if (o.removeNoTerminalPunctLines && !endsWithTerminal(line)) why = 'no-terminal-punct-line';
          else {
            let n = 0;
            let cjk = 0;
            let long = false;
            let u = t;
            for (; u < ids.length && ends[u] <= lineEnd; u++) {
              n++;
              if (isCjkWordId(ids[u])) cjk++;
              if (ends[u] - starts[u] > o.maxWordLength) long = true;
            }
            tokensEnd = u;
            if (n < o.minWordsPerLine) why = 'short-line';
            else if (long) why = 'long-word-line';
            else {
              cjkChars += cjk;
              words += n;
            }
          }
          if (why) {
            edits ??= {};
            edits[why] = (edits[why] ?? 0) + 1;
          } else {
            info[4 * kept.length] = line.length;
            info[4 * kept.length + 1] = lineEnd - line.length;
            info[4 * kept.length + 2] = t;
            info[4 * kept.length + 3] = tokensEnd;
            kept.push(line);
            keptLines++;
          }
        }
        const joined = kept.length === lines.length ? doc.text : kept.join('\n');
        const squashed = joined.includes('\n\n\n') ? joined.replace(/\n{3,}/g, '\n\n') : joined;
        const text = squashed.trim();
        if (text === '') return { keep: false, reason: 'no-lines-left' };
        const cjk =
          doc.lang === 'zh' || doc.lang === 'ja' || (doc.lang === undefined && words > 0 && cjkChars / words >= 0.5);
        const min = keptLines < o.pageMinLines ? o.paragraphMinSentences : cjk ? o.cjkMinSentences : o.minSentences;
        const sentences = countSentences(text, min);
        if (sentences < min) return { keep: false, reason: 'too-few-sentences', detail: `${sentences} < ${min}` };
        if (!edits) return { keep: true };
        doc.text = text;
        reuseAnalysis(doc, a, squashed, text, kept.length, cjkChars);
        return { keep: true, edits };
      },
    };
  },
});
