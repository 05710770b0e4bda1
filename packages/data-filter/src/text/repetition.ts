/** Repetition statistics in the style of Gopher (Rae et al. 2021, table A1). */
import { grownLength } from './capacity.js';

/** Of a list of strings: the share of items that repeat an earlier item, and the share of characters in them. */
export function duplicateShares(items: string[]): { items: number; chars: number } {
  // No repeat among fewer than two items, or two different ones (most documents have one or two lines).
  if (items.length < 2 || (items.length === 2 && items[0] !== items[1])) return { items: 0, chars: 0 };
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
  counts = new Uint32Array(0);
  private stamps = new Uint32Array(0);
  private gen = 0;
  private mask = 0;
  /** The slot of the key last passed to `inc`. */
  slot = 0;

  reset(n: number): void {
    const size = grownLength(256, 2 * n);
    if (size > this.stamps.length) {
      this.k1 = new Uint32Array(size);
      this.k2 = new Uint32Array(size);
      this.counts = new Uint32Array(size);
      this.stamps = new Uint32Array(size);
      this.gen = 0;
    }
    this.mask = Math.min(size, this.stamps.length) - 1;
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
        this.slot = slot;
        return 1;
      }
      if (this.k1[slot] === a && this.k2[slot] === b) {
        this.slot = slot;
        return ++this.counts[slot];
      }
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

/**
 * Open-addressing table from global word id to local id, sized to one text (a few KiB for a page: it stays in the
 * L1 cache, where an array indexed by global id would miss on every rare word). Slots hold global id + 1 (0: empty).
 */
let localKeys = new Int32Array(1024);
let localValues = new Int32Array(1024);
let idScratch = new Uint32Array(1024);
let lengthScratch = new Uint32Array(1024);

/**
 * `wordIds` from scanned global word ids (see scanWords) and their offsets: the same ids (in order of first
 * occurrence), lengths and character count as `wordIds` of the word strings, without a map of strings. The arrays
 * are views of buffers reused by the next call.
 */
export function wordIdsOfScan(ids: Int32Array, starts: Int32Array, ends: Int32Array): WordIds & { distinct: number } {
  const n = ids.length;
  const size = grownLength(256, 2 * n);
  if (localKeys.length < size) {
    localKeys = new Int32Array(size);
    localValues = new Int32Array(size);
  }
  const mask = size - 1;
  const keys = localKeys;
  const values = localValues;
  keys.fill(0, 0, size);
  if (idScratch.length < n) {
    const grown = grownLength(idScratch.length, n);
    idScratch = new Uint32Array(grown);
    lengthScratch = new Uint32Array(grown);
  }
  const out = idScratch;
  const lengths = lengthScratch;
  let next = 0;
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const key = ids[i] + 1;
    let slot = Math.imul(key, 0x9e3779b1) >>> 0;
    slot &= mask;
    while (keys[slot] !== key && keys[slot] !== 0) slot = (slot + 1) & mask;
    if (keys[slot] === 0) {
      keys[slot] = key;
      values[slot] = next++;
    }
    out[i] = values[slot];
    const len = ends[i] - starts[i];
    lengths[i] = len;
    chars += len;
  }
  return { ids: out.subarray(0, n), lengths: lengths.subarray(0, n), chars, distinct: next };
}

let posScratch = new Int32Array(1024);
let h1Scratch = new Uint32Array(1024);
let h2Scratch = new Uint32Array(1024);
let slotScratch = new Int32Array(1024);
let countScratch = new Uint32Array(1024);

/**
 * The n-gram statistics of `topNgramShare` and `duplicateNgramShare` for n = 1, 2, ... over only the positions that
 * can matter: an n-gram that occurs twice has an (n-1)-gram prefix that occurs twice, so after each n the positions
 * whose n-gram occurs once in the text are dropped (`prune`). The keys of the remaining positions are the same as
 * `NgramKeys` computes, and so are both shares.
 */
export class NgramCandidates {
  n = 0;
  private size: number;
  private readonly pos: Int32Array;
  private readonly h1: Uint32Array;
  private readonly h2: Uint32Array;
  private readonly slots: Int32Array;
  /** Whether the positions were counted at the current n (their slots are valid). */
  private counted = false;

  /** `w.ids` must be dense (0 .. distinct - 1, as `wordIds` gives them). Uses buffers shared by all instances: one at a time. */
  constructor(
    private readonly w: WordIds,
    private readonly distinct: number,
  ) {
    const len = w.ids.length;
    this.size = len;
    if (posScratch.length < len) {
      const size = grownLength(posScratch.length, len);
      posScratch = new Int32Array(size);
      h1Scratch = new Uint32Array(size);
      h2Scratch = new Uint32Array(size);
      slotScratch = new Int32Array(size);
    }
    this.pos = posScratch;
    this.h1 = h1Scratch;
    this.h2 = h2Scratch;
    this.slots = slotScratch;
    // Straight to n = 1: the keys `advance` would compute from zero keys.
    const ids = w.ids;
    for (let i = 0; i < len; i++) {
      const x = ids[i];
      let a = Math.imul(x, M1);
      a ^= a >>> 15;
      let b = Math.imul(x + 0x6a09e667, M2);
      b ^= b >>> 13;
      this.pos[i] = i;
      this.h1[i] = Math.imul(a, 0x2c1b3c6d) ^ (a >>> 12);
      this.h2[i] = Math.imul(b, 0x297a2d39) ^ (b >>> 11);
    }
    this.n = 1;
  }

  /** Number of n-grams in the text at the current n. */
  get count(): number {
    return Math.max(0, this.w.ids.length - this.n + 1);
  }

  /** Number of positions still considered. */
  get candidates(): number {
    return this.size;
  }

  private countAll(): void {
    table.reset(this.size);
    for (let j = 0; j < this.size; j++) {
      table.inc(this.h1[j], this.h2[j]);
      this.slots[j] = table.slot;
    }
    this.counted = true;
  }

  /**
   * Moves to n + 1: drops the positions whose n-gram occurs once and extends the others' keys by one word (one pass;
   * the positions are in increasing order, so the first that has no next word ends it).
   */
  advance(): void {
    const ids = this.w.ids;
    let byWord: Uint32Array | undefined;
    let byKey: Uint32Array | undefined;
    if (this.n === 1 && !this.counted) {
      // Words: count by id, no hash table (all positions are still candidates at n = 1).
      if (countScratch.length < this.distinct)
        countScratch = new Uint32Array(Math.max(this.distinct, 2 * countScratch.length));
      byWord = countScratch;
      byWord.fill(0, 0, this.distinct);
      for (let j = 0; j < this.size; j++) byWord[ids[this.pos[j]]]++;
    } else if (this.n > 0) {
      if (!this.counted) this.countAll();
      byKey = table.counts;
    }
    const add = this.n;
    let k = 0;
    for (let j = 0; j < this.size; j++) {
      const i = this.pos[j];
      if (byWord ? byWord[ids[i]] < 2 : byKey && byKey[this.slots[j]] < 2) continue;
      if (i + add >= ids.length) break;
      const x = ids[i + add];
      let a = Math.imul(this.h1[j] ^ x, M1);
      a ^= a >>> 15;
      let b = Math.imul(this.h2[j] + x + 0x6a09e667, M2);
      b ^= b >>> 13;
      this.pos[k] = i;
      this.h1[k] = Math.imul(a, 0x2c1b3c6d) ^ (a >>> 12);
      this.h2[k] = Math.imul(b, 0x297a2d39) ^ (b >>> 11);
      k++;
    }
    this.size = k;
    this.n++;
    this.counted = false;
  }

  /** `topNgramShare` at the current n. */
  topShare(): number {
    const w = this.w;
    if (this.count === 0 || w.chars === 0) return 0;
    table.reset(this.size);
    let best = 0;
    let bestAt = 0;
    for (let j = 0; j < this.size; j++) {
      const c = table.inc(this.h1[j], this.h2[j]);
      this.slots[j] = table.slot;
      if (c > best) {
        best = c;
        bestAt = this.pos[j];
      }
    }
    this.counted = true;
    if (best < 2) return 0;
    let gramChars = 0;
    for (let j = 0; j < this.n; j++) gramChars += w.lengths[bestAt + j];
    return (best * gramChars) / w.chars;
  }

  /** `duplicateNgramShare` at the current n. */
  duplicateShare(): number {
    const w = this.w;
    if (this.count === 0 || w.chars === 0) return 0;
    table.reset(this.size);
    let dup = 0;
    let coveredTo = 0; // words before this index are already counted
    const n = this.n;
    for (let j = 0; j < this.size; j++) {
      const c = table.inc(this.h1[j], this.h2[j]);
      this.slots[j] = table.slot;
      if (c > 1) {
        const i = this.pos[j];
        for (let q = Math.max(i, coveredTo); q < i + n; q++) dup += w.lengths[q];
        coveredTo = i + n;
      }
    }
    this.counted = true;
    return dup / w.chars;
  }
}
