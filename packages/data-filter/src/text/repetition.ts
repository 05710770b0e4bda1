/** Repetition statistics in the style of Gopher (Rae et al. 2021, table A1). */

/** Of a list of strings: the share of items that repeat an earlier item, and the share of characters in them. */
export function duplicateShares(items: string[]): { items: number; chars: number } {
  const seen = new Set<string>();
  let dupItems = 0;
  let dupChars = 0;
  let chars = 0;
  for (const it of items) {
    chars += it.length;
    if (seen.has(it)) {
      dupItems++;
      dupChars += it.length;
    } else seen.add(it);
  }
  return { items: items.length ? dupItems / items.length : 0, chars: chars ? dupChars / chars : 0 };
}

/** Words as integer ids (equal words, equal ids) with their character lengths. */
export interface WordIds {
  ids: Uint32Array;
  lengths: Uint32Array;
  chars: number;
}

/** Maps words to ids for the n-gram statistics. */
export function wordIds(words: string[]): WordIds {
  const index = new Map<string, number>();
  const ids = new Uint32Array(words.length);
  const lengths = new Uint32Array(words.length);
  let chars = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let id = index.get(w);
    if (id === undefined) index.set(w, (id = index.size));
    ids[i] = id;
    lengths[i] = w.length;
    chars += w.length;
  }
  return { ids, lengths, chars };
}

const M1 = 0x9e3779b1;
const M2 = 0x85ebca77;

/**
 * Keys of all n-grams for n = 1, 2, ... computed incrementally (one mixing step per position and n): `advance()`
 * moves to the next n; `h1[i]`, `h2[i]` are two 32-bit hashes of the n-gram starting at i (collisions are
 * negligible for these statistics).
 */
export class NgramKeys {
  n = 0;
  /** The two hash lanes of the n-gram at each position. */
  readonly h1: Uint32Array;
  readonly h2: Uint32Array;

  constructor(private readonly w: WordIds) {
    this.h1 = new Uint32Array(w.ids.length);
    this.h2 = new Uint32Array(w.ids.length);
  }

  /** Number of n-grams at the current n. */
  get count(): number {
    return Math.max(0, this.w.ids.length - this.n + 1);
  }

  /** Moves to n + 1. */
  advance(): void {
    const ids = this.w.ids;
    const add = this.n;
    for (let i = 0; i + add < ids.length; i++) {
      const x = ids[i + add];
      let a = Math.imul(this.h1[i] ^ x, M1);
      a ^= a >>> 15;
      let b = Math.imul(this.h2[i] + x + 0x6a09e667, M2);
      b ^= b >>> 13;
      this.h1[i] = Math.imul(a, 0x2c1b3c6d) ^ (a >>> 12);
      this.h2[i] = Math.imul(b, 0x297a2d39) ^ (b >>> 11);
    }
    this.n++;
  }
}

/** A reusable open-addressing table counting (h1, h2) key pairs; `reset` empties it in O(1) via generation stamps. */
class PairCounter {
  private k1 = new Uint32Array(0);
  private k2 = new Uint32Array(0);
  private counts = new Uint32Array(0);
  private stamps = new Uint32Array(0);
  private gen = 0;
  private mask = 0;

  reset(n: number): void {
    let size = 1024;
    while (size < 2 * n) size *= 2;
    if (size > this.stamps.length) {
      this.k1 = new Uint32Array(size);
      this.k2 = new Uint32Array(size);
      this.counts = new Uint32Array(size);
      this.stamps = new Uint32Array(size);
      this.mask = size - 1;
      this.gen = 0;
    }
    if (++this.gen === 0xffffffff) {
      this.stamps.fill(0);
      this.gen = 1;
    }
  }

  /** Adds one occurrence of the key and returns its count so far. */
  inc(a: number, b: number): number {
    let slot = (a ^ Math.imul(b, 0x9e3779b1)) & this.mask;
    for (;;) {
      if (this.stamps[slot] !== this.gen) {
        this.stamps[slot] = this.gen;
        this.k1[slot] = a;
        this.k2[slot] = b;
        this.counts[slot] = 1;
        return 1;
      }
      if (this.k1[slot] === a && this.k2[slot] === b) return ++this.counts[slot];
      slot = (slot + 1) & this.mask;
    }
  }
}

const table = new PairCounter();

/** Share of word characters covered by the most frequent current n-gram (its count × its characters over all characters). */
export function topNgramShare(w: WordIds, k: NgramKeys): number {
  const count = k.count;
  if (count === 0 || w.chars === 0) return 0;
  table.reset(count);
  let best = 0;
  let bestAt = 0;
  for (let i = 0; i < count; i++) {
    const c = table.inc(k.h1[i], k.h2[i]);
    if (c > best) {
      best = c;
      bestAt = i;
    }
  }
  if (best < 2) return 0;
  let gramChars = 0;
  for (let j = 0; j < k.n; j++) gramChars += w.lengths[bestAt + j];
  return (best * gramChars) / w.chars;
}

/** Share of word characters inside repeats of current n-grams seen earlier in the text (each word counted once). */
export function duplicateNgramShare(w: WordIds, k: NgramKeys): number {
  const count = k.count;
  if (count === 0 || w.chars === 0) return 0;
  table.reset(count);
  let dup = 0;
  let coveredTo = 0; // words before this index are already counted
  for (let i = 0; i < count; i++) {
    if (table.inc(k.h1[i], k.h2[i]) > 1) {
      for (let j = Math.max(i, coveredTo); j < i + k.n; j++) dup += w.lengths[j];
      coveredTo = i + k.n;
    }
  }
  return dup / w.chars;
}
