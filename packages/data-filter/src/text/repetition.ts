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
 * moves to the next n; `key(i)` is a 53-bit key of the n-gram starting at i (two 32-bit lanes; collisions are
 * negligible for these statistics).
 */
export class NgramKeys {
  n = 0;
  private readonly h1: Uint32Array;
  private readonly h2: Uint32Array;

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

  /** Key of the n-gram at position i. */
  key(i: number): number {
    return (this.h1[i] >>> 0) * 0x200000 + (this.h2[i] & 0x1fffff);
  }
}

/** Share of word characters covered by the most frequent current n-gram (its count × its characters over all characters). */
export function topNgramShare(w: WordIds, k: NgramKeys): number {
  const count = k.count;
  if (count === 0 || w.chars === 0) return 0;
  const counts = new Map<number, number>();
  let best = 0;
  let bestAt = 0;
  for (let i = 0; i < count; i++) {
    const key = k.key(i);
    const c = (counts.get(key) ?? 0) + 1;
    counts.set(key, c);
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
  const seen = new Set<number>();
  const covered = new Uint8Array(w.ids.length);
  for (let i = 0; i < count; i++) {
    const key = k.key(i);
    if (seen.has(key)) covered.fill(1, i, i + k.n);
    else seen.add(key);
  }
  let dup = 0;
  for (let i = 0; i < covered.length; i++) if (covered[i]) dup += w.lengths[i];
  return dup / w.chars;
}
