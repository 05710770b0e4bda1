import type { FilterDocument } from '@yuan/core';
import { isCjkPunct, isCjkWordChar, isSpace } from './chars.js';

/** Word- and line-level view of a text, shared by the heuristic filters. */
export interface TextAnalysis {
  readonly text: string;
  /**
   * Whitespace-separated tokens that contain a letter or digit (punctuation-only tokens such as `,` or `@-@` are left
   * out); every Han or kana character is a token of its own, CJK punctuation separates tokens.
   */
  readonly words: string[];
  /** Number of Han and kana characters. */
  readonly cjkChars: number;
  /** All lines (split on `\n`). */
  readonly lines: string[];
  /** True when the text is Chinese or Japanese: lengths are counted in characters, CJK punctuation is used. */
  readonly cjk: boolean;
}

const ALNUM = /[\p{L}\p{N}]/u;

function hasAlnum(w: string): boolean {
  for (let i = 0; i < w.length; i++) {
    const c = w.charCodeAt(i);
    if (c < 128) {
      if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
    } else if (ALNUM.test(w[i]) || (c >= 0xd800 && c <= 0xdbff)) return true;
  }
  return false;
}

/** Splits text into word tokens (see TextAnalysis.words) and counts CJK characters. */
export function splitWords(text: string): { words: string[]; cjkChars: number } {
  const words: string[] = [];
  const push = (w: string) => {
    if (hasAlnum(w)) words.push(w);
  };
  let cjkChars = 0;
  let start = -1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    let width = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        width = 2;
      }
    }
    if (cp < 128 ? cp === 32 || (cp >= 9 && cp <= 13) : isSpace(cp) || isCjkPunct(cp)) {
      if (start >= 0) push(text.slice(start, i));
      start = -1;
    } else if (cp >= 0x3040 && isCjkWordChar(cp)) {
      if (start >= 0) push(text.slice(start, i));
      start = -1;
      words.push(text.slice(i, i + width));
      cjkChars++;
    } else if (start < 0) {
      start = i;
    }
    i += width - 1;
  }
  if (start >= 0) push(text.slice(start));
  return { words, cjkChars };
}

/** Whether a document is treated as CJK: its language says so, or (with no language set) most of its words are CJK. */
export function isCjkDoc(lang: string | undefined, cjkChars: number, words: number): boolean {
  if (lang === 'zh' || lang === 'ja') return true;
  if (lang !== undefined && lang !== 'other') return false;
  return words > 0 && cjkChars / words >= 0.5;
}

type Base = Omit<TextAnalysis, 'cjk'>;
const cache = new WeakMap<FilterDocument, Base>();

/** The analysis of a document's current text, computed once per text and shared between filters. */
export function analyze(doc: FilterDocument): TextAnalysis {
  let base = cache.get(doc);
  if (!base || base.text !== doc.text) {
    const { words, cjkChars } = splitWords(doc.text);
    base = { text: doc.text, words, cjkChars, lines: doc.text.split('\n') };
    cache.set(doc, base);
  }
  return { ...base, cjk: isCjkDoc(doc.lang, base.cjkChars, base.words.length) };
}
