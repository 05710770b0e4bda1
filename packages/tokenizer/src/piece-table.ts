/** Multiplier of the polynomial string hash (odd, so powers never vanish mod 2^32). */
export const HASH_BASE = 0x01000193;

/** Polynomial hash (mod 2^32) of text[start, end): h = h·B + c over the UTF-16 code units. */
export function hashRange(text: string, start: number, end: number): number {
  let h = 0;
  for (let i = start; i < end; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

/** B^n mod 2^32, the factor that shifts a hash left past n code units. */
export function hashPower(n: number): number {
  let p = 1;
  for (let i = 0; i < n; i++) p = Math.imul(p, HASH_BASE);
  return p;
}

function slot(hash: number, mask: number): number {
  const h = Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d);
  return (h ^ (h >>> 12)) & mask;
}

/**
 * An open-addressing table from piece strings to ids, looked up by a range of a text and its `hashRange` hash,
 * so that finding a piece allocates nothing (hashes of merged symbols combine as h(a)·B^|b| + h(b)).
 */
export class PieceTable {
  /** Slot i holds [hash, id] at 2i, 2i+1; id -1 marks an empty slot. */
  private readonly slots: Int32Array;
  private readonly mask: number;

  /** Indexes `pieces` (id = index); the first of duplicate strings wins. */
  constructor(private readonly pieces: readonly string[]) {
    let size = 1;
    while (size < pieces.length * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(2 * size).fill(-1);
    pieces.forEach((p, id) => {
      const h = hashRange(p, 0, p.length);
      if (this.find(p, 0, p.length, h) >= 0) return;
      let s = slot(h, this.mask);
      while (this.slots[2 * s + 1] >= 0) s = (s + 1) & this.mask;
      this.slots[2 * s] = h;
      this.slots[2 * s + 1] = id;
    });
  }

  /** The id of the piece equal to text[start, end) whose hash is `hash`, or -1. */
  find(text: string, start: number, end: number, hash: number): number {
    const len = end - start;
    for (let s = slot(hash, this.mask); ; s = (s + 1) & this.mask) {
      const id = this.slots[2 * s + 1];
      if (id < 0) return -1;
      if (this.slots[2 * s] !== hash) continue;
      const p = this.pieces[id];
      if (p.length !== len) continue;
      let i = 0;
      while (i < len && p.charCodeAt(i) === text.charCodeAt(start + i)) i++;
      if (i === len) return id;
    }
  }
}
