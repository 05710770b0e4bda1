import { createHash } from 'node:crypto';
import { bool, obj } from '@yuan/core';
import { KeySet } from '../hash/keyset.js';
import { defineFilter } from './define.js';

/** Options of `exact-dedup`. */
export interface ExactDedupOptions {
  /** Compare lower-cased text. Default false. */
  lowercase: boolean;
  /** Compare with all whitespace runs collapsed to one space. Default true. */
  collapseWhitespace: boolean;
}

/** Keeps the first document of each exact text (128-bit MD5 of the normalised text; state 32 bytes per distinct document). */
export const exactDedupFilter = defineFilter<ExactDedupOptions>({
  name: 'exact-dedup',
  description: 'drops documents whose (normalised) text was seen before; keeps the first',
  defaults: { lowercase: false, collapseWhitespace: true },
  schema: obj({ lowercase: bool(), collapseWhitespace: bool() }),
  create(o) {
    const seen = new KeySet(4, 1 << 16);
    const key = new Uint32Array(4);
    let dropped = 0;
    return {
      apply(doc) {
        let t = doc.text;
        if (o.lowercase) t = t.toLowerCase();
        if (o.collapseWhitespace) t = t.replace(/\s+/g, ' ').trim();
        const digest = createHash('md5').update(t).digest();
        for (let i = 0; i < 4; i++) key[i] = digest.readUInt32LE(i * 4);
        if (seen.add(key)) return { keep: true };
        dropped++;
        return { keep: false, reason: 'duplicate', detail: digest.toString('hex') };
      },
      stateInfo: () => ({ distinct: seen.size, duplicates: dropped, bytes: seen.bytes }),
    };
  },
});
