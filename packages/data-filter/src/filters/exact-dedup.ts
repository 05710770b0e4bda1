import { createHash, hash } from 'node:crypto';
import { bool, obj } from '@yuan/core';
import { KeySet } from '../hash/keyset.js';
import type { KeyedFilter } from '../pipeline.js';
import { defineFilter } from './define.js';

const oneShot = typeof hash === 'function';
/** Two adjacent white-space characters, or one (in the sense of `\s`) other than a space or a newline. */
const SPACE_RUN_OR_OTHER_SPACE = /\s\s|[\t\v\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;

/** The exact-dedup key of a text: its 128-bit MD5 (after the options' normalisation) as four little-endian words. */
export function exactKey(text: string, o: ExactDedupOptions): Uint32Array {
  let t = text;
  if (o.lowercase) t = t.toLowerCase();
  if (o.collapseWhitespace) {
    // With no white space but single spaces and newlines, each run is one character: only newlines change.
    t = SPACE_RUN_OR_OTHER_SPACE.test(t) ? t.replace(/\s+/g, ' ').trim() : t.replaceAll('\n', ' ').trim();
  }
  // One-shot `crypto.hash` (Node >= 20.12) avoids a Hash object per document.
  const digest = oneShot ? (hash('md5', t, 'buffer') as unknown as Buffer) : createHash('md5').update(t).digest();
  const key = new Uint32Array(4);
  for (let i = 0; i < 4; i++) key[i] = digest.readUInt32LE(i * 4);
  return key;
}

/** The MD5 hex digest a key was made from. */
export function keyHex(keys: Uint32Array, offset: number): string {
  const b = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) b.writeUInt32LE(keys[offset + i], i * 4);
  return b.toString('hex');
}

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
    let dropped = 0;
    const f: KeyedFilter = {
      keyWidth: 4,
      keys: (doc) => exactKey(doc.text, o),
      applyKeys(keys, offset) {
        if (seen.add(keys, offset)) return { keep: true };
        dropped++;
        return { keep: false, reason: 'duplicate', detail: keyHex(keys, offset) };
      },
      apply(doc) {
        return f.applyKeys(f.keys(doc), 0);
      },
      stateInfo: () => ({ distinct: seen.size, duplicates: dropped, bytes: seen.bytes }),
    };
    return f;
  },
});
