import { num, obj, optional } from '@yuan/core';
import { chooseBands } from '../dedup/bands.js';
import { MinHasher } from '../dedup/minhash.js';
import { KeySet } from '../hash/keyset.js';
import type { KeyedFilter } from '../pipeline.js';
import { check, defineFilter } from './define.js';

/** Options of `minhash`. */
export interface MinHashOptions {
  /** Target Jaccard similarity of shingle sets above which documents are near-duplicates. Default 0.75. */
  threshold: number;
  /** Number of hash permutations. Default 128. */
  numPerm: number;
  /** Shingle size in tokens (words; a CJK character is a token). Default 5. */
  ngram: number;
  /** LSH bands and rows; derived from threshold and numPerm when absent (0.75 and 128 give 11 × 11). */
  bands?: number;
  rows?: number;
  /** Seed of the hash functions. Default 1. */
  seed: number;
}

/**
 * Near-duplicate removal with MinHash-LSH in one streaming pass: a document sharing a band bucket with any earlier
 * document (kept or dropped, so clusters are connected components) is dropped; the first of each cluster is kept.
 * State: one 64-bit key per band per document, ≤ 16·bands bytes per document.
 */
export const minhashFilter = defineFilter<MinHashOptions>({
  name: 'minhash',
  description:
    'near-duplicate removal with MinHash-LSH (bands × rows from a Jaccard threshold); keeps the first of each cluster',
  defaults: { threshold: 0.75, numPerm: 128, ngram: 5, seed: 1 },
  schema: {
    expected: 'minhash options',
    parse(value, path) {
      const o = obj({
        threshold: num({ gt: 0, max: 1 }),
        numPerm: num({ int: true, min: 1, max: 4096 }),
        ngram: num({ int: true, min: 1 }),
        bands: optional(num({ int: true, min: 1 })),
        rows: optional(num({ int: true, min: 1 })),
        seed: num({ int: true, min: 0 }),
      }).parse(value, path);
      check((o.bands === undefined) === (o.rows === undefined), `${path}: give both bands and rows, or neither`);
      if (o.bands !== undefined)
        check(
          o.bands * o.rows! <= o.numPerm,
          `${path}: bands × rows (${o.bands} × ${o.rows}) exceeds numPerm (${o.numPerm})`,
        );
      return o;
    },
  },
  create(o) {
    const { bands, rows } =
      o.bands !== undefined ? { bands: o.bands, rows: o.rows! } : chooseBands(o.threshold, o.numPerm);
    const hasher = new MinHasher({ ngram: o.ngram, numPerm: bands * rows, bands, rows, seed: o.seed });
    const buckets = new KeySet(2, 1 << 16);
    let docs = 0;
    let dropped = 0;
    const f: KeyedFilter = {
      keyWidth: 2 * bands,
      keys: (doc) => hasher.bandKeysOfDoc(doc),
      applyKeys(keys, offset) {
        let hitBand = -1;
        for (let b = 0; b < bands; b++) if (!buckets.add(keys, offset + 2 * b) && hitBand < 0) hitBand = b;
        docs++;
        if (hitBand < 0) return { keep: true };
        dropped++;
        return { keep: false, reason: 'near-duplicate', detail: `shares band ${hitBand} of ${bands} (rows ${rows})` };
      },
      apply(doc) {
        return f.applyKeys(f.keys(doc), 0);
      },
      stateInfo: () => ({
        documents: docs,
        nearDuplicates: dropped,
        bands,
        rows,
        buckets: buckets.size,
        bytes: buckets.bytes,
      }),
    };
    return f;
  },
});
