/** 32-bit hashing of strings and integer words (MurmurHash3-style mixing, written for this package). */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** The MurmurHash3 finaliser: a bijective 32-bit avalanche mix. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Hash of the UTF-16 code units of `s[start, end)`, two units per block. */
export function hashString(s: string, seed = 0, start = 0, end = s.length): number {
  let h = seed | 0;
  let i = start;
  for (; i + 1 < end; i += 2) h = mixBlock(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  if (i < end) {
    let k = Math.imul(s.charCodeAt(i), C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  return fmix32(h ^ (end - start));
}

/** Hash of `words[start, end)` (32-bit integers). */
export function hashWords(words: ArrayLike<number>, seed = 0, start = 0, end = words.length): number {
  let h = seed | 0;
  for (let i = start; i < end; i++) h = mixBlock(h, words[i]);
  return fmix32(h ^ (end - start));
}
