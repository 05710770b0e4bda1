import { fmix32, hashString, hashWords } from '../hash/murmur.js';
import type { FilterDocument } from '@yuan/core';
import { analyze, splitWords } from '../text/analysis.js';
import { scanWords, WORD_ROW, WordNumbers } from '../text/words.js';
import { simdMinHash, type SignatureKernel } from './minhash-simd.js';

/** MinHash parameters: shingle size in tokens, number of permutations, LSH bands × rows, seed. */
export interface MinHashParams {
  ngram: number;
  numPerm: number;
  bands: number;
  rows: number;
  seed: number;
}

const NON_ALNUM = /[^\p{L}\p{N}]+/gu;

/** Tokens compared by near-dup detection: lower-cased words and CJK characters with punctuation removed. */
export function dedupTokens(text: string): string[] {
  const out: string[] = [];
  for (const w of splitWords(text.toLowerCase()).words) {
    const t = w.replace(NON_ALNUM, '');
    if (t) out.push(t);
  }
  return out;
}

let lastWord = '';
let lastToken = '';

/**
 * The dedup token of a word: lower-cased, without characters other than letters and digits (may be empty). The last
 * result is remembered: both per-word caches below ask for the same new word one after the other.
 */
function dedupToken(word: string): string {
  if (word !== lastWord) {
    lastToken = isLowerAlnum(word) ? word : word.toLowerCase().replace(NON_ALNUM, '');
    lastWord = word;
  }
  return lastToken;
}

/** Whether a word is only ASCII lower-case letters and digits (its own dedup token). */
function isLowerAlnum(word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57))) return false;
  }
  return true;
}

const emptyToken = new WordNumbers((w) => (dedupToken(w) === '' ? 1 : 0));
const tokenHashes = new Map<number, WordNumbers>();

/** Per distinct word, `hashString(dedupToken(word), seed)`. */
function tokenHash(seed: number): WordNumbers {
  let h = tokenHashes.get(seed);
  if (!h) tokenHashes.set(seed, (h = new WordNumbers((w) => hashString(dedupToken(w), seed))));
  return h;
}

/** Scratch buffers of `shingleHashes` (its result is a view of `shingleScratch`, valid until the next call). */
let idScratch = new Uint32Array(1024);
let shingleScratch = new Uint32Array(1024);

function shingles(ids: Uint32Array, count: number, ngram: number, seed: number): Uint32Array {
  const n = Math.max(1, count - ngram + 1);
  if (shingleScratch.length < n) shingleScratch = new Uint32Array(Math.max(n, 2 * shingleScratch.length));
  const out = shingleScratch;
  for (let i = 0; i < n; i++) out[i] = hashWords(ids, seed, i, Math.min(count, i + ngram));
  return out.subarray(0, n);
}

/**
 * 32-bit hashes of the token n-gram shingles of a text (one shingle of all tokens when there are fewer than n).
 * `scan`, when given, must be `scanWords(text)` of the current word-table generation. The result is a view of a
 * buffer that the next call reuses.
 */
export function shingleHashes(text: string, ngram: number, seed: number, scan?: { ids: Int32Array }): Uint32Array {
  // Lower-casing the text and then splitting it gives the words of the text lower-cased, except where a Σ becomes a
  // final ς depending on what follows it across a word boundary: such texts take the slow way.
  if (text.includes('\u03a3')) {
    const tokens = dedupTokens(text);
    const ids = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) ids[i] = hashString(tokens[i], seed);
    return shingles(ids, ids.length, ngram, seed);
  }
  const words = (scan ?? scanWords(text)).ids;
  const hashes = tokenHash(seed);
  const hash = hashes.table();
  const hashColumn = hashes.column;
  const empty = emptyToken.table();
  const emptyColumn = emptyToken.column;
  if (idScratch.length < words.length) idScratch = new Uint32Array(Math.max(words.length, 2 * idScratch.length));
  const ids = idScratch;
  let count = 0;
  for (let i = 0; i < words.length; i++) {
    const id = words[i];
    if (empty[id * WORD_ROW + emptyColumn] === 0) ids[count++] = hash[id * WORD_ROW + hashColumn];
  }
  return shingles(ids, count, ngram, seed);
}

/** Computes MinHash signatures and their LSH band keys. */
export class MinHasher {
  private readonly permSeeds: Uint32Array;
  private readonly kernel?: SignatureKernel;

  /** `simd: false` always uses the scalar loop (the SIMD kernel, when available, gives the same signatures). */
  constructor(
    readonly params: MinHashParams,
    options: { simd?: boolean } = {},
  ) {
    this.permSeeds = new Uint32Array(params.numPerm);
    for (let i = 0; i < params.numPerm; i++) this.permSeeds[i] = fmix32((params.seed + 0x9e3779b9 * (i + 1)) >>> 0);
    if (options.simd !== false) this.kernel = simdMinHash(this.permSeeds);
  }

  /** Whether signatures are computed with the WebAssembly SIMD kernel. */
  get simd(): boolean {
    return this.kernel !== undefined;
  }

  /** The signature: for each permutation (a seeded bijective mix of the shingle hash), the minimum over shingles. */
  signature(text: string): Uint32Array {
    return this.signatureOf(shingleHashes(text, this.params.ngram, this.params.seed));
  }

  /** `signature(doc.text)`, from the document's shared analysis. */
  signatureOfDoc(doc: FilterDocument): Uint32Array {
    const a = analyze(doc);
    return this.signatureOf(shingleHashes(a.text, this.params.ngram, this.params.seed, a));
  }

  /** `bandKeys(signatureOfDoc(doc))`, with the signature in a buffer of this hasher (no allocation but the keys). */
  bandKeysOfDoc(doc: FilterDocument): Uint32Array {
    const a = analyze(doc);
    this.sigScratch ??= new Uint32Array(this.params.numPerm);
    return this.bandKeys(
      this.signatureOf(shingleHashes(a.text, this.params.ngram, this.params.seed, a), this.sigScratch),
    );
  }

  private sigScratch?: Uint32Array;

  /** The signature of a list of shingle hashes (written to `into` when given, else to a new array). */
  signatureOf(shingles: Uint32Array, into?: Uint32Array): Uint32Array {
    const n = this.params.numPerm;
    const sig = into ?? new Uint32Array(n);
    if (this.kernel) {
      this.kernel(shingles, shingles.length, sig);
      return sig;
    }
    const seeds = this.permSeeds;
    const count = shingles.length;
    // Permutations outside, shingles inside: the running minimum stays in a register. fmix32 is inlined by hand;
    // values are compared as signed after flipping the top bit, which orders them as unsigned.
    for (let p = 0; p < n; p++) {
      const seed = seeds[p] | 0;
      let min = 0x7fffffff;
      for (let i = 0; i < count; i++) {
        let h = shingles[i] ^ seed;
        h ^= h >>> 16;
        h = Math.imul(h, 0x85ebca6b);
        h ^= h >>> 13;
        h = Math.imul(h, 0xc2b2ae35);
        h ^= h >>> 16;
        h ^= 0x80000000;
        if (h < min) min = h;
      }
      sig[p] = (min ^ 0x80000000) >>> 0;
    }
    return sig;
  }

  /** One 64-bit key (two words) per band, each hashing the band's rows and its index. */
  bandKeys(sig: Uint32Array): Uint32Array {
    const { bands, rows, seed } = this.params;
    const keys = new Uint32Array(bands * 2);
    for (let b = 0; b < bands; b++) {
      keys[2 * b] = hashWords(sig, seed ^ (0x51ed27 + b), b * rows, (b + 1) * rows);
      keys[2 * b + 1] = hashWords(sig, seed ^ (0x7f4a7c15 + b * 0x9e37), b * rows, (b + 1) * rows);
    }
    return keys;
  }
}

/** Fraction of equal positions of two signatures: an estimate of the Jaccard similarity of their shingle sets. */
export function estimateJaccard(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}
