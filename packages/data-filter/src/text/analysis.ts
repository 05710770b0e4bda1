import type { FilterDocument } from '@yuan/core';
import { grownLength } from './capacity.js';
import { duplicateShares } from './repetition.js';
import { scanOf, scanWords, wordGeneration, wordOf, type WordScan } from './words.js';

/**
 * Word- and line-level view of a text, computed once per document text and shared by the heuristic filters: the
 * words are scanned once (as ids into the per-thread word table, see `scanWords`), lines are split once.
 */
export interface TextAnalysis extends WordScan {
  readonly text: string;
  /**
   * Whitespace-separated tokens that contain a letter or digit (punctuation-only tokens such as `,` or `@-@` are left
   * out); every Han or kana character is a token of its own, CJK punctuation separates tokens. Built on first use.
   */
  readonly words: string[];
  /** All lines (split on `\n`). */
  readonly lines: string[];
  /** The lines trimmed, without the empty ones. */
  readonly trimmedLines: string[];
  /** `duplicateShares(trimmedLines)`. */
  readonly lineDuplicates: { items: number; chars: number };
  /** True when the text is Chinese or Japanese: lengths are counted in characters, CJK punctuation is used. */
  readonly cjk: boolean;
}

/** Splits text into word tokens (see TextAnalysis.words) and counts CJK characters. */
export function splitWords(text: string): { words: string[]; cjkChars: number } {
  const s = scanWords(text);
  const words = new Array<string>(s.ids.length);
  for (let i = 0; i < s.ids.length; i++) words[i] = wordOf(s.ids[i]);
  return { words, cjkChars: s.cjkChars };
}

/** Whether a document is treated as CJK: its language says so, or (with no language set) most of its words are CJK. */
export function isCjkDoc(lang: string | undefined, cjkChars: number, words: number): boolean {
  if (lang === 'zh' || lang === 'ja') return true;
  if (lang !== undefined && lang !== 'other') return false;
  return words > 0 && cjkChars / words >= 0.5;
}

class Analysis implements TextAnalysis {
  readonly ids: Int32Array;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly cjkChars: number;
  readonly generation: number;
  cjk = false;
  private _words?: string[];
  private _lines?: string[];
  private _trimmed?: string[];
  private _dups?: { items: number; chars: number };

  constructor(
    readonly text: string,
    scan?: WordScan,
  ) {
    const s = scan ?? scanWords(text);
    this.ids = s.ids;
    this.starts = s.starts;
    this.ends = s.ends;
    this.cjkChars = s.cjkChars;
    this.generation = s.generation;
  }

  get words(): string[] {
    if (!this._words) {
      const w = new Array<string>(this.ids.length);
      for (let i = 0; i < w.length; i++) w[i] = wordOf(this.ids[i]);
      this._words = w;
    }
    return this._words;
  }

  get lines(): string[] {
    return (this._lines ??= this.text.split('\n'));
  }

  get trimmedLines(): string[] {
    if (!this._trimmed) {
      const out: string[] = [];
      for (const l of this.lines) {
        const t = l.trim();
        if (t !== '') out.push(t);
      }
      this._trimmed = out;
    }
    return this._trimmed;
  }

  get lineDuplicates(): { items: number; chars: number } {
    return (this._dups ??= duplicateShares(this.trimmedLines));
  }
}

const cache = new WeakMap<FilterDocument, Analysis>();

/** The analysis of a document's current text, computed once per text and shared between filters. */
export function analyze(doc: FilterDocument): TextAnalysis {
  let a = cache.get(doc);
  if (!a || a.text !== doc.text || a.generation !== wordGeneration()) {
    a = new Analysis(doc.text);
    cache.set(doc, a);
  }
  a.cjk = isCjkDoc(doc.lang, a.cjkChars, a.ids.length);
  return a;
}

let tIds = new Int32Array(1024);
let tStarts = new Int32Array(1024);
let tEnds = new Int32Array(1024);

/**
 * Sets the analysis of `text`, a text made of lines of `before` (the analysis of the document's current text), as
 * the document's analysis, without scanning it: `parts` holds, per kept line, the index of its first token in `before`,
 * the index after its last token, and the offset of the line in `text` minus its offset in `before.text` (3 numbers
 * per line, `n` lines). Word tokens never cross a line break, so the tokens of `text` are those of its lines, shifted.
 * The caller must make sure that `text` is exactly those lines with only white space (other than U+FEFF) between and
 * around them; `cjkChars` is the number of Han and kana tokens among them.
 */
export function adoptLinesAnalysis(
  doc: FilterDocument,
  before: TextAnalysis,
  text: string,
  parts: Int32Array,
  n: number,
  cjkChars: number,
): void {
  if (before.generation !== wordGeneration()) return;
  let count = 0;
  for (let j = 0; j < n; j++) count += parts[3 * j + 1] - parts[3 * j];
  if (tIds.length < count) {
    const size = grownLength(tIds.length, count);
    tIds = new Int32Array(size);
    tStarts = new Int32Array(size);
    tEnds = new Int32Array(size);
  }
  let k = 0;
  for (let j = 0; j < n; j++) {
    const delta = parts[3 * j + 2];
    for (let t = parts[3 * j], end = parts[3 * j + 1]; t < end; t++) {
      tIds[k] = before.ids[t];
      tStarts[k] = before.starts[t] + delta;
      tEnds[k++] = before.ends[t] + delta;
    }
  }
  cache.set(doc, new Analysis(text, scanOf(tIds, tStarts, tEnds, count, cjkChars)));
}
