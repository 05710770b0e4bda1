/**
 * A set of fixed-width binary keys (`width` 32-bit words each) in one open-addressing table.
 * Memory: 4·width bytes per slot, at most 2 slots per key (it grows at half load), i.e. ≤ 8·width bytes per key.
 */
export class KeySet {
  private table: Uint32Array;
  private used: Uint8Array;
  private count = 0;
  private mask: number;

  constructor(
    readonly width: number,
    initialSlots = 1024,
  ) {
    let slots = 16;
    while (slots < initialSlots) slots *= 2;
    this.table = new Uint32Array(slots * width);
    this.used = new Uint8Array(slots);
    this.mask = slots - 1;
  }

  /** Number of keys held. */
  get size(): number {
    return this.count;
  }

  /** Bytes allocated by the table. */
  get bytes(): number {
    return this.table.byteLength + this.used.byteLength;
  }

  /** Adds the key `key[offset, offset+width)`; returns true when it was not there before. */
  add(key: ArrayLike<number>, offset = 0): boolean {
    if ((this.count + 1) * 2 > this.used.length) this.grow();
    return this.insert(key, offset);
  }

  /** Whether the key `key[offset, offset+width)` is in the set. */
  has(key: ArrayLike<number>, offset = 0): boolean {
    return this.find(key, offset) >= 0;
  }

  private find(key: ArrayLike<number>, offset: number): number {
    let slot = key[offset] & this.mask;
    while (this.used[slot]) {
      if (this.equals(slot, key, offset)) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1 - slot;
  }

  private equals(slot: number, key: ArrayLike<number>, offset: number): boolean {
    const base = slot * this.width;
    for (let j = 0; j < this.width; j++) if (this.table[base + j] !== key[offset + j] >>> 0) return false;
    return true;
  }

  private insert(key: ArrayLike<number>, offset: number): boolean {
    const found = this.find(key, offset);
    if (found >= 0) return false;
    const slot = -1 - found;
    this.used[slot] = 1;
    const base = slot * this.width;
    for (let j = 0; j < this.width; j++) this.table[base + j] = key[offset + j];
    this.count++;
    return true;
  }

  private grow(): void {
    const oldTable = this.table;
    const oldUsed = this.used;
    const slots = oldUsed.length * 2;
    this.table = new Uint32Array(slots * this.width);
    this.used = new Uint8Array(slots);
    this.mask = slots - 1;
    this.count = 0;
    for (let s = 0; s < oldUsed.length; s++) if (oldUsed[s]) this.insert(oldTable, s * this.width);
  }
}
