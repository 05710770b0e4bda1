/**
 * A per-thread table of the distinct word tokens seen so far (each with an integer id), and a scanner that turns a
 * text into the ids of its word tokens without allocating a string per token: a token is identified by its length
 * and two 32-bit hashes of its UTF-16 code units (FNV-1a, and a multiply-xorshift lane), computed as the scan passes
 * its characters. Two different words of one table get the same id only if both hashes and the length collide: about
 * n² / 2^65 for n words, under 3·10^-8 for the largest table (2^20 words). Properties of a word (its script, its
 * lower-cased core, its MinHash token, ...) are pure functions of its string, so they are computed once per distinct
 * word and cached by id (`WordCache`, `WordNumbers`). The table starts over (new `generation`, ids reused) when it
 * grows past `MAX_WORDS`.
 */
import { coreLower, isCjkPunct, isCjkWordChar, isSpace } from './chars.js';

const MAX_WORDS = 1 << 20;
const ALNUM = /[\p{L}\p{N}]/u;

/** Whether a token counts as a word: it has a letter or digit (a high surrogate counts, as the first half of one). */
export function hasAlnum(w: string): boolean {
  for (let i = 0; i < w.length; i++) {
    const c = w.charCodeAt(i);
    if (c < 128) {
      if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
    } else if (ALNUM.test(w[i]) || (c >= 0xd800 && c <= 0xdbff)) return true;
  }
  return false;
}

/** Initial capacity of the word table (a corpus soon has tens of thousands of distinct words: growing costs rehashing). */
const INITIAL_WORDS = 1 << 15;
/**
 * Int32 values per word row. Everything known about a word sits in its row (32 bytes: two rows per cache line), so
 * that after the scan has touched a word, every later per-token lookup of the same document (its flags, its script,
 * its stop-word bit, its MinHash token hash, ...) hits the cache: column 0 holds the length | flags << 28, column 1
 * the second hash, columns 2 .. WORD_ROW - 1 the values of `WordNumbers`.
 */
export const WORD_ROW = 8;
/** First row column given to a `WordNumbers`. */
const FIRST_NUMBER_COLUMN = 2;
let words: string[] = [];
/** Rows of the words by id (see WORD_ROW); capacity `capacity` words. */
let rows = new Int32Array(WORD_ROW * INITIAL_WORDS);
let capacity = INITIAL_WORDS;
/**
 * Open addressing, two int32 per slot: the word's first hash and its id + 1 (0: empty slot), at most half full. A
 * lookup touches the slot and the word's row (never the word's string).
 */
let slots = new Int32Array(2 * 2 * INITIAL_WORDS);
let slotMask = 2 * INITIAL_WORDS - 1;
let generation = 0;
/**
 * Flags of the word last returned by `lookup`: bit 0, the token counts as a word (see hasAlnum); bit 1, it is one Han
 * or kana character.
 */
let lastFlags = 0;
const LENGTH = (1 << 28) - 1;

/** The word table's generation: ids of an older generation are no longer valid. */
export function wordGeneration(): number {
  return generation;
}

/** The string of word id `id`. */
export function wordOf(id: number): string {
  return words[id];
}

/** Whether word `id` is one Han or kana character. */
export function isCjkWordId(id: number): boolean {
  return (rows[id * WORD_ROW] & (2 << 28)) !== 0;
}

/** Number of distinct words in the table. */
export function wordCount(): number {
  return words.length;
}

/** First BMP code point of the Han and kana ranges that `cjkIds` covers directly. */
const CJK_BASE = 0x3040;
/** Id + 1 of each single-character Han or kana word of the BMP (0: not seen yet): such a token skips the hash table. */
const cjkIds = new Int32Array(0xa000 - CJK_BASE);

function reset(): void {
  words = [];
  cjkIds.fill(0);
  slots.fill(0);
  generation++;
}

/** Doubles the capacity: the rows are copied, the slots rehashed. */
function grow(): void {
  capacity *= 2;
  const r = new Int32Array(WORD_ROW * capacity);
  r.set(rows);
  rows = r;
  const old = slots;
  slots = new Int32Array(4 * capacity);
  slotMask = 2 * capacity - 1;
  for (let o = 0; o < old.length; o += 2) {
    if (old[o + 1] === 0) continue;
    let s = old[o] & slotMask;
    while (slots[2 * s + 1] !== 0) s = (s + 1) & slotMask;
    slots[2 * s] = old[o];
    slots[2 * s + 1] = old[o + 1];
  }
}

/** Offset basis of the first hash lane (FNV-1a, 32 bits). */
const BASIS1 = 0x811c9dc5;
/** Offset basis of the second lane. */
const BASIS2 = 0x2545f491;

/** The first hash lane after one more code unit `c`: FNV-1a. */
function step1(h: number, c: number): number {
  return Math.imul(h ^ c, 0x01000193);
}

/** The second hash lane after one more code unit `c`: multiply, then xorshift (its low bits are not the first lane's). */
function step2(g: number, c: number): number {
  const x = Math.imul(g ^ c, 0x5bd1e995);
  return x ^ (x >>> 15);
}

/**
 * The id of `text[start, end)` (hashes `h` and `g` of its code units, see step1 and step2), adding it to the table
 * when new; sets `lastFlags`.
 */
function lookup(text: string, start: number, end: number, h: number, g: number): number {
  const len = end - start;
  let s = h & slotMask;
  for (;;) {
    const e = slots[2 * s + 1];
    if (e === 0) break;
    if (slots[2 * s] === h) {
      const row = (e - 1) * WORD_ROW;
      const lf = rows[row];
      if ((lf & LENGTH) === len && rows[row + 1] === g) {
        lastFlags = lf >>> 28;
        return e - 1;
      }
    }
    s = (s + 1) & slotMask;
  }
  return insert(text, start, end, h, g, s);
}

/** Adds `text[start, end)` (hashes `h`, `g`, not in the table; `s` its free slot) as a new word; returns its id. */
function insert(text: string, start: number, end: number, h: number, g: number, s: number): number {
  const id = words.length;
  if (id >= capacity) {
    grow();
    return lookup(text, start, end, h, g);
  }
  const w = text.slice(start, end);
  words.push(w);
  const cp = w.codePointAt(0) ?? 0;
  const f = (hasAlnum(w) ? 1 : 0) | (w.length === (cp > 0xffff ? 2 : 1) && isCjkWordChar(cp) ? 2 : 0);
  const row = id * WORD_ROW;
  rows[row] = (end - start) | (f << 28);
  rows[row + 1] = g;
  slots[2 * s] = h;
  slots[2 * s + 1] = id + 1;
  lastFlags = f;
  return id;
}

/**
 * Ends the token `text[start, end)` (hashes `h`, `g`) of a scan: looks it up and, when it is a word (has a letter or
 * digit), records it at `count` in the scan's slab space (from `scanAt`). Returns the new count.
 */
function endWord(text: string, start: number, end: number, h: number, g: number, count: number): number {
  const id = lookup(text, start, end, h, g);
  if (!(lastFlags & 1)) return count;
  const at = scanAt + count;
  slabIds[at] = id;
  slabStarts[at] = start;
  slabEnds[at] = end;
  return count + 1;
}

/** A text's word tokens: global ids with their start and end offsets, and the number of Han and kana characters. */
export interface WordScan {
  readonly ids: Int32Array;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly cjkChars: number;
  /** The table generation the ids belong to. */
  readonly generation: number;
}

/**
 * Scan results are views of three shared slabs (ids, starts, ends; an allocation per document is slow), written in
 * place: a scan reserves room for every possible token, writes from `scanAt`, and keeps what it used. New slabs
 * when these are full (the old ones live on in the views that still point at them).
 */
const SLAB = 1 << 17;
let slabIds = new Int32Array(SLAB);
let slabStarts = new Int32Array(SLAB);
let slabEnds = new Int32Array(SLAB);
let slabUsed = 0;
/** Where the scan in progress writes its first token. */
let scanAt = 0;

/** Makes room for `n` tokens after `slabUsed` (new slabs when these are full) and returns where they start. */
function reserve(n: number): number {
  if (slabUsed + n > slabIds.length) {
    const size = Math.max(SLAB, n);
    slabIds = new Int32Array(size);
    slabStarts = new Int32Array(size);
    slabEnds = new Int32Array(size);
    slabUsed = 0;
  }
  return slabUsed;
}

/** Keeps the `count` tokens written at `at` (from `reserve`) and returns them as a scan. */
function commit(at: number, count: number, cjkChars: number): WordScan {
  slabUsed = at + count;
  return {
    ids: slabIds.subarray(at, at + count),
    starts: slabStarts.subarray(at, at + count),
    ends: slabEnds.subarray(at, at + count),
    cjkChars,
    generation,
  };
}

/**
 * Splits a text into word tokens: whitespace-separated tokens that contain a letter or digit (punctuation-only
 * tokens are left out); every Han or kana character is a token of its own; CJK punctuation separates tokens.
 */
export function scanWords(text: string): WordScan {
  if (words.length >= MAX_WORDS) reset();
  const n = text.length;
  let count = 0;
  let cjkChars = 0;
  let start = -1;
  let h = 0;
  let g = 0;
  // At most one token per UTF-16 unit.
  const at = (scanAt = reserve(n));
  const ids = slabIds;
  const starts = slabStarts;
  const ends = slabEnds;
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    if (cp < 128) {
      if (cp === 32 || (cp >= 9 && cp <= 13)) {
        if (start >= 0) {
          count = endWord(text, start, i, h, g, count);
          start = -1;
        }
      } else {
        if (start < 0) {
          start = i;
          h = BASIS1;
          g = BASIS2;
        }
        h = step1(h, cp);
        g = step2(g, cp);
      }
      continue;
    }
    let width = 1;
    const unit = cp;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        width = 2;
      }
    }
    if (isSpace(cp) || isCjkPunct(cp)) {
      if (start >= 0) {
        count = endWord(text, start, i, h, g, count);
        start = -1;
      }
    } else if (cp >= 0x3040 && isCjkWordChar(cp)) {
      if (start >= 0) {
        count = endWord(text, start, i, h, g, count);
        start = -1;
      }
      if (width === 1 && cp < 0xa000) {
        let id = cjkIds[cp - CJK_BASE];
        if (id === 0) cjkIds[cp - CJK_BASE] = id = lookup(text, i, i + 1, step1(BASIS1, unit), step2(BASIS2, unit)) + 1;
        ids[at + count] = id - 1;
      } else {
        let ch = step1(BASIS1, unit);
        let cg = step2(BASIS2, unit);
        if (width === 2) {
          ch = step1(ch, text.charCodeAt(i + 1));
          cg = step2(cg, text.charCodeAt(i + 1));
        }
        ids[at + count] = lookup(text, i, i + width, ch, cg);
      }
      starts[at + count] = i;
      ends[at + count++] = i + width;
      cjkChars++;
    } else {
      if (start < 0) {
        start = i;
        h = BASIS1;
        g = BASIS2;
      }
      h = step1(h, unit);
      g = step2(g, unit);
      if (width === 2) {
        h = step1(h, text.charCodeAt(i + 1));
        g = step2(g, text.charCodeAt(i + 1));
      }
    }
    i += width - 1;
  }
  if (start >= 0) count = endWord(text, start, n, h, g, count);
  return commit(at, count, cjkChars);
}

/**
 * A word scan of tokens given by the caller (ids with offsets, `count` of them): copies into a slab as `scanWords`
 * returns them. For a text built from another text's lines, whose tokens are known (see `analysisFromLines`).
 */
export function scanOf(
  ids: Int32Array,
  starts: Int32Array,
  ends: Int32Array,
  count: number,
  cjkChars: number,
): WordScan {
  const at = reserve(count);
  slabIds.set(ids.subarray(0, count), at);
  slabStarts.set(starts.subarray(0, count), at);
  slabEnds.set(ends.subarray(0, count), at);
  return commit(at, count, cjkChars);
}

/** A property of words, computed once per distinct word (by id) and kept until the table starts over. */
export class WordCache<T> {
  private values: (T | undefined)[] = [];
  private gen = -1;

  constructor(private readonly compute: (word: string) => T) {}

  /** The property of word `id` (of the current generation). */
  get(id: number): T {
    if (this.gen !== generation) {
      this.values = [];
      this.gen = generation;
    }
    const values = this.values;
    let v = id < values.length ? values[id] : undefined;
    if (v === undefined) {
      v = this.compute(words[id]);
      while (values.length <= id) values.push(undefined);
      values[id] = v;
    }
    return v;
  }
}

/** Next free column of the word rows for a `WordNumbers`. */
let nextColumn = FIRST_NUMBER_COLUMN;

/**
 * A numeric property of words (an int32), computed once per distinct word and kept until the table starts over. The
 * values live in a column of the word rows (see WORD_ROW), next to the word's other facts, so a per-token loop reads
 * `table[ids[i] * WORD_ROW + column]` from a row the scan just touched. Once the rows' columns are taken, a property
 * gets a table of its own with the same layout.
 */
export class WordNumbers {
  /** The column of this property: the value of word `id` is `table()[id * WORD_ROW + column]`. */
  readonly column: number;
  /** This property's own table, when the word rows had no free column. */
  private own?: Int32Array;
  /** Ids below this have their value in the table. */
  private filled = 0;
  private gen = -1;

  /** `compute` gets the word and its id (to read other per-word caches). */
  constructor(private readonly compute: (word: string, id: number) => number) {
    if (nextColumn < WORD_ROW) this.column = nextColumn++;
    else {
      this.column = 0;
      this.own = new Int32Array(0);
    }
  }

  /**
   * The table holding this property of every word of the current table (see `column`). Words added since the last
   * call are computed now, in id order. Valid until the next scan adds words: call it after scanning.
   */
  table(): Int32Array {
    if (this.gen !== generation) {
      this.filled = 0;
      this.gen = generation;
    }
    const n = words.length;
    if (this.filled < n) {
      if (this.own && this.own.length < WORD_ROW * n) {
        const t = new Int32Array(WORD_ROW * capacity);
        t.set(this.own.subarray(0, WORD_ROW * this.filled));
        this.own = t;
      }
      const t = this.own ?? rows;
      for (let id = this.filled; id < n; id++) t[id * WORD_ROW + this.column] = this.compute(words[id], id);
      this.filled = n;
    }
    return this.own ?? rows;
  }
}

/** Per word: the word lower-cased without the non-letters at its two ends (`coreLower`), shared by the filters. */
export const coreLowerOfWord = new WordCache(coreLower);
