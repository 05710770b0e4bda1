/**
 * A max-heap of candidate merges (score, left, right, size) ordered as SentencePiece's BPE agenda: higher score
 * first, and on equal scores the pair further left first. Storage is reused across `clear()` calls.
 */
export class PairHeap {
  private score = new Float64Array(64);
  private left = new Int32Array(64);
  private right = new Int32Array(64);
  private size = new Int32Array(64);
  private n = 0;
  /** Fields of the entry returned by the last `pop()`. */
  topLeft = 0;
  topRight = 0;
  topSize = 0;

  /** Number of queued entries. */
  get length(): number {
    return this.n;
  }

  /** Empties the heap. */
  clear(): void {
    this.n = 0;
  }

  /** Queues a candidate merge of symbols `left` and `right` into a piece of `size` code units. */
  push(score: number, left: number, right: number, size: number): void {
    if (this.n === this.score.length) this.grow();
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(score, left, p)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, score, left, right, size);
  }

  /** Removes the best entry into `topLeft`/`topRight`/`topSize`; false when empty. */
  pop(): boolean {
    if (this.n === 0) return false;
    this.topLeft = this.left[0];
    this.topRight = this.right[0];
    this.topSize = this.size[0];
    const last = --this.n;
    if (last === 0) return true;
    const s = this.score[last];
    const l = this.left[last];
    const r = this.right[last];
    const z = this.size[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.before(this.score[c + 1], this.left[c + 1], c)) c++;
      if (!this.before(this.score[c], this.left[c], -1, s, l)) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, s, l, r, z);
    return true;
  }

  /** Whether (score, left) goes before entry `j` (or before (s2, l2) when j is -1). */
  private before(score: number, left: number, j: number, s2 = 0, l2 = 0): boolean {
    const os = j >= 0 ? this.score[j] : s2;
    const ol = j >= 0 ? this.left[j] : l2;
    return score > os || (score === os && left < ol);
  }

  private move(from: number, to: number): void {
    this.score[to] = this.score[from];
    this.left[to] = this.left[from];
    this.right[to] = this.right[from];
    this.size[to] = this.size[from];
  }

  private set(i: number, score: number, left: number, right: number, size: number): void {
    this.score[i] = score;
    this.left[i] = left;
    this.right[i] = right;
    this.size[i] = size;
  }

  private grow(): void {
    const cap = this.score.length * 2;
    const f = new Float64Array(cap);
    f.set(this.score);
    this.score = f;
    for (const k of ['left', 'right', 'size'] as const) {
      const a = new Int32Array(cap);
      a.set(this[k]);
      this[k] = a;
    }
  }
}
