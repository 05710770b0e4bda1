import type { Transport } from './transport.js';

/** Element-wise reduction of `allReduce`. */
export type ReduceOp = 'sum' | 'max' | 'min';

/** Tuning of the ring collectives. */
export interface CollectiveOptions {
  /** Bytes of one bucket: the ring runs bucket by bucket, each message is about bucketBytes / D. Default 8 MiB. */
  bucketBytes: number;
  /** Buckets in flight at once (overlaps the reduction of one with the transfer of the next). Default 2. */
  inflight: number;
}

/** Defaults of CollectiveOptions (8 MiB buckets, 2 in flight: our choice, measured with bench/collectives.mjs). */
export const COLLECTIVE_DEFAULTS: CollectiveOptions = { bucketBytes: 8 << 20, inflight: 2 };

/**
 * A set of ranks that run collectives together. Ranks inside a group are group-local (0 … size − 1); `ranks` maps
 * them to global ranks. Every member must call the same collectives on the group in the same order; buffers are
 * Float32Array and collectives work in place. A lost or silent peer rejects the call with PeerLostError /
 * PeerTimeoutError naming the global rank.
 */
export interface ProcessGroup {
  /** This process's rank inside the group. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly size: number;
  /** Global ranks of the members, in group order. */
  readonly ranks: readonly number[];
  /** This process's global rank. */
  readonly globalRank: number;
  /** The transport's name (`tcp`, `threads`, …). */
  readonly transport: string;
  /**
   * Element-wise reduction across the group, in place: afterwards every rank holds the same result. Ring
   * reduce-scatter + all-gather, bucketed; each rank sends 2(D − 1)/D of the buffer's bytes. All ranks must pass
   * the same length. Returns `buf`.
   */
  allReduce(buf: Float32Array, op?: ReduceOp): Promise<Float32Array>;
  /**
   * Sums across the group so that this rank's shard (`shardRange(buf.length)`) holds the total; other parts of
   * `buf` are left with partial sums. Sends (D − 1)/D of the bytes. Returns the shard as a view into `buf`.
   */
  reduceScatter(buf: Float32Array): Promise<Float32Array>;
  /**
   * Fills `buf` from every rank's shard (`shardRange`): rank i's shard of its own `buf` ends up everywhere. Sends
   * (D − 1)/D of the bytes. Returns `buf`.
   */
  allGather(buf: Float32Array): Promise<Float32Array>;
  /** Copies `buf` of group rank `root` (default 0) into every rank's `buf` (a bucketed chain). Returns `buf`. */
  broadcast(buf: Float32Array, root?: number): Promise<Float32Array>;
  /** Raw bytes from `root` to all (control messages; the others' length need not be known). */
  broadcastBytes(data: Uint8Array | undefined, root?: number): Promise<Uint8Array>;
  /** Every rank's bytes, indexed by group rank (control messages: losses, flags, errors). */
  allGatherBytes(data: Uint8Array): Promise<Uint8Array[]>;
  /** Resolves once every rank of the group has reached it. */
  barrier(): Promise<void>;
  /**
   * Point-to-point: sends to group rank `peer` under `tag` (a number or a string without `#`; default 0). Messages
   * are matched by (sender, tag); messages with one tag arrive in order. With `transfer` the threads transport moves
   * `data.buffer` instead of copying. Do not change `data` before the promise resolves. Rejects with PeerLostError /
   * PeerTimeoutError naming the global rank.
   */
  send(
    peer: number,
    data: Float32Array | Uint8Array,
    tag?: number | string,
    opts?: { transfer?: boolean },
  ): Promise<void>;
  /** The next Float32Array sent by group rank `peer` under `tag`; rejects after the transport's timeout without data from it. */
  recv(peer: number, tag?: number | string): Promise<Float32Array>;
  /** The next message from `peer` under `tag`, as bytes. */
  recvBytes(peer: number, tag?: number | string): Promise<Uint8Array>;
  /**
   * Fails the whole transport with `error` (every rank's pending and later calls reject): a rank that fails on its
   * own calls this so that its peers stop at once, naming it, instead of waiting out their timeout.
   */
  abort(error: Error): void;
  /** This rank's shard of `n` elements: `[offset, length]` (balanced, the remainder on the first ranks). */
  shardRange(n: number): [offset: number, length: number];
  /** A group of some of this group's ranks (group-local numbers). This rank must be one of them. No communication. */
  subgroup(ranks: readonly number[]): ProcessGroup;
  /** Closes the underlying transport (world group only; a subgroup's close is a no-op). */
  close(): Promise<void>;
}

/**
 * Shard `j` of `n` elements split over `d` ranks: `[offset, length]`, the first `n mod d` shards one longer
 * (the uniform split with the remainder first, as DeepSpeed's partitioning).
 */
export function shardRange(n: number, d: number, j: number): [number, number] {
  const base = Math.floor(n / d);
  const rem = n % d;
  return [j * base + Math.min(j, rem), base + (j < rem ? 1 : 0)];
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

function bytesOf(buf: Float32Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + offset * 4, length * 4);
}

function floatsOf(data: Uint8Array): Float32Array {
  if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, data.byteLength >> 2);
  return new Float32Array(data.slice().buffer);
}

/** Marks a promise as observed (it is awaited later, but may reject while another await is pending). */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

function reduceInto(dst: Float32Array, offset: number, src: Float32Array, op: ReduceOp): void {
  const n = src.length;
  if (op === 'sum') for (let i = 0; i < n; i++) dst[offset + i] += src[i]!;
  else if (op === 'max') for (let i = 0; i < n; i++) dst[offset + i] = Math.max(dst[offset + i]!, src[i]!);
  else for (let i = 0; i < n; i++) dst[offset + i] = Math.min(dst[offset + i]!, src[i]!);
}

/** Runs `count` tasks with at most `width` at once; the first rejection rejects (the rest still settle). */
async function windowed(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, count) }, async () => {
    while (next < count) await task(next++);
  });
  const results = await Promise.allSettled(lanes);
  const bad = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (bad) throw bad.reason;
}

/** The ProcessGroup over a transport. */
export class RingGroup implements ProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly globalRank: number;
  private readonly key: string;

  constructor(
    private readonly t: Transport,
    readonly ranks: readonly number[],
    private readonly opts: CollectiveOptions,
    private readonly isWorld: boolean,
  ) {
    this.globalRank = t.rank;
    this.rank = ranks.indexOf(t.rank);
    this.size = ranks.length;
    this.key = ranks.join(',');
  }

  get transport(): string {
    return this.t.name;
  }

  shardRange(n: number): [number, number] {
    return shardRange(n, this.size, this.rank);
  }

  private nextSeq(): number {
    const s = this.t.sequences.get(this.key) ?? 0;
    this.t.sequences.set(this.key, s + 1);
    return s;
  }

  private g(i: number): number {
    return this.ranks[mod(i, this.size)]!;
  }

  private checkBuf(buf: unknown, what: string): asserts buf is Float32Array {
    if (!(buf instanceof Float32Array))
      throw new TypeError(`${what} needs a Float32Array, got ${Object.prototype.toString.call(buf)}`);
  }

  private checkRank(r: number, what: string): void {
    if (!Number.isInteger(r) || r < 0 || r >= this.size)
      throw new RangeError(`${what} ${r} is not a rank of this group (0..${this.size - 1})`);
  }

  /** Chunk j of bucket b: piece b of shard j. */
  private buckets(n: number): { count: number; chunk: (b: number, j: number) => [number, number] } {
    const d = this.size;
    const piece = Math.max(1, Math.floor(this.opts.bucketBytes / 4 / d));
    const count = Math.max(1, Math.ceil(Math.ceil(n / d) / piece));
    return {
      count,
      chunk: (b, j) => {
        const [lo, len] = shardRange(n, d, j);
        const start = Math.min(len, b * piece);
        return [lo + start, Math.min(piece, len - start)];
      },
    };
  }

  private async ringReduceScatter(
    buf: Float32Array,
    tag: string,
    chunk: (j: number) => [number, number],
    op: ReduceOp,
  ): Promise<void> {
    const d = this.size;
    const me = this.rank;
    const next = this.g(me + 1);
    const prev = this.g(me - 1);
    for (let s = 0; s < d - 1; s++) {
      const [so, sl] = chunk(mod(me - s - 1, d));
      const [ro, rl] = chunk(mod(me - s - 2, d));
      const stepTag = `${tag}#${s}`;
      const sent = quiet(this.t.send(next, stepTag, bytesOf(buf, so, sl)));
      const data = await this.t.recv(prev, stepTag);
      this.checkLength(data, rl, prev, tag);
      reduceInto(buf, ro, floatsOf(data), op);
      await sent;
    }
  }

  private async ringAllGather(buf: Float32Array, tag: string, chunk: (j: number) => [number, number]): Promise<void> {
    const d = this.size;
    const me = this.rank;
    const next = this.g(me + 1);
    const prev = this.g(me - 1);
    for (let s = 0; s < d - 1; s++) {
      const [so, sl] = chunk(mod(me - s, d));
      const [ro, rl] = chunk(mod(me - s - 1, d));
      const stepTag = `${tag}#${s}`;
      const sent = quiet(this.t.send(next, stepTag, bytesOf(buf, so, sl)));
      const data = await this.t.recv(prev, stepTag);
      this.checkLength(data, rl, prev, tag);
      buf.set(floatsOf(data), ro);
      await sent;
    }
  }

  private checkLength(data: Uint8Array, elements: number, from: number, tag: string): void {
    if (data.byteLength !== elements * 4) {
      throw new RangeError(
        `rank ${from} sent ${data.byteLength} bytes where rank ${this.globalRank} expected ${elements * 4} in ${tag.split('#')[0]}: the ranks passed buffers of different lengths`,
      );
    }
  }

  async allReduce(buf: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    this.checkBuf(buf, 'allReduce');
    if (op !== 'sum' && op !== 'max' && op !== 'min')
      throw new RangeError(`allReduce op "${String(op)}" is not sum, max or min`);
    if (this.size === 1) return buf;
    const tag = `allReduce#${this.key}#${this.nextSeq()}`;
    const { count, chunk } = this.buckets(buf.length);
    await windowed(count, this.opts.inflight, async (b) => {
      await this.ringReduceScatter(buf, `${tag}#${b}#rs`, (j) => chunk(b, j), op);
      await this.ringAllGather(buf, `${tag}#${b}#ag`, (j) => chunk(b, j));
    });
    return buf;
  }

  async reduceScatter(buf: Float32Array): Promise<Float32Array> {
    this.checkBuf(buf, 'reduceScatter');
    const [lo, len] = this.shardRange(buf.length);
    if (this.size > 1) {
      const tag = `reduceScatter#${this.key}#${this.nextSeq()}`;
      const { count, chunk } = this.buckets(buf.length);
      await windowed(count, this.opts.inflight, (b) =>
        this.ringReduceScatter(buf, `${tag}#${b}`, (j) => chunk(b, j), 'sum'),
      );
    }
    return buf.subarray(lo, lo + len);
  }

  async allGather(buf: Float32Array): Promise<Float32Array> {
    this.checkBuf(buf, 'allGather');
    if (this.size === 1) return buf;
    const tag = `allGather#${this.key}#${this.nextSeq()}`;
    const { count, chunk } = this.buckets(buf.length);
    await windowed(count, this.opts.inflight, (b) => this.ringAllGather(buf, `${tag}#${b}`, (j) => chunk(b, j)));
    return buf;
  }

  async broadcast(buf: Float32Array, root = 0): Promise<Float32Array> {
    this.checkBuf(buf, 'broadcast');
    this.checkRank(root, 'broadcast root');
    if (this.size === 1) return buf;
    const tag = `broadcast#${this.key}#${this.nextSeq()}`;
    const d = this.size;
    const pos = mod(this.rank - root, d);
    const next = this.g(this.rank + 1);
    const prev = this.g(this.rank - 1);
    const piece = Math.max(1, this.opts.bucketBytes >> 2);
    const count = Math.max(1, Math.ceil(buf.length / piece));
    const sends: Promise<void>[] = [];
    try {
      for (let b = 0; b < count; b++) {
        const lo = b * piece;
        const len = Math.max(0, Math.min(piece, buf.length - lo));
        if (pos !== 0) {
          const data = await this.t.recv(prev, `${tag}#${b}`);
          this.checkLength(data, len, prev, tag);
          buf.set(floatsOf(data), lo);
        }
        if (pos !== d - 1) {
          const s = quiet(this.t.send(next, `${tag}#${b}`, bytesOf(buf, lo, len)));
          if (pos === 0) await s;
          else sends.push(s);
        }
      }
    } finally {
      await Promise.allSettled(sends);
    }
    await Promise.all(sends);
    return buf;
  }

  async broadcastBytes(data: Uint8Array | undefined, root = 0): Promise<Uint8Array> {
    this.checkRank(root, 'broadcastBytes root');
    const tag = `broadcastBytes#${this.key}#${this.nextSeq()}`;
    if (this.rank === root) {
      if (!(data instanceof Uint8Array)) throw new TypeError('broadcastBytes needs a Uint8Array on the root');
      await Promise.all(this.ranks.filter((_, i) => i !== root).map((g) => this.t.send(g, tag, data)));
      return data;
    }
    return this.t.recv(this.ranks[root]!, tag);
  }

  async allGatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    if (!(data instanceof Uint8Array)) throw new TypeError('allGatherBytes needs a Uint8Array');
    const tag = `allGatherBytes#${this.key}#${this.nextSeq()}`;
    const others = this.ranks.map((g, i) => [g, i] as const).filter(([, i]) => i !== this.rank);
    const sent = quiet(Promise.all(others.map(([g]) => this.t.send(g, tag, data))));
    const out: Uint8Array[] = new Array(this.size);
    out[this.rank] = data;
    await Promise.all(others.map(async ([g, i]) => void (out[i] = await this.t.recv(g, tag))));
    await sent;
    return out;
  }

  async barrier(): Promise<void> {
    if (this.size > 1) await this.allGatherBytes(new Uint8Array(0));
  }

  private p2pTag(tag: number | string): string {
    if (typeof tag === 'string' && tag.includes('#')) throw new RangeError(`point-to-point tag "${tag}" contains "#"`);
    return `p2p#${this.key}#${tag}`;
  }

  abort(error: Error): void {
    this.t.abort(error);
  }

  async send(
    peer: number,
    data: Float32Array | Uint8Array,
    tag: number | string = 0,
    opts: { transfer?: boolean } = {},
  ): Promise<void> {
    this.checkRank(peer, 'send peer');
    if (peer === this.rank) throw new RangeError(`send peer ${peer} is this rank`);
    if (!(data instanceof Float32Array) && !(data instanceof Uint8Array))
      throw new TypeError('send needs a Float32Array or Uint8Array');
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    await this.t.send(this.ranks[peer]!, this.p2pTag(tag), bytes, opts);
  }

  async recvBytes(peer: number, tag: number | string = 0): Promise<Uint8Array> {
    this.checkRank(peer, 'recv peer');
    if (peer === this.rank) throw new RangeError(`recv peer ${peer} is this rank`);
    return this.t.recv(this.ranks[peer]!, this.p2pTag(tag));
  }

  async recv(peer: number, tag: number | string = 0): Promise<Float32Array> {
    const data = await this.recvBytes(peer, tag);
    if (data.byteLength % 4 !== 0)
      throw new RangeError(`rank ${this.ranks[peer]} sent ${data.byteLength} bytes, not a whole number of float32`);
    return floatsOf(data);
  }

  subgroup(ranks: readonly number[]): ProcessGroup {
    if (!Array.isArray(ranks) || ranks.length === 0) throw new RangeError('subgroup needs a non-empty list of ranks');
    const seen = new Set<number>();
    for (const r of ranks) {
      this.checkRank(r, 'subgroup rank');
      if (seen.has(r)) throw new RangeError(`subgroup rank ${r} is listed twice`);
      seen.add(r);
    }
    if (!seen.has(this.rank))
      throw new RangeError(
        `rank ${this.rank} is not in subgroup [${ranks.join(', ')}]; only members create a subgroup`,
      );
    return new RingGroup(
      this.t,
      ranks.map((r) => this.ranks[r]!),
      this.opts,
      false,
    );
  }

  async close(): Promise<void> {
    if (this.isWorld) await this.t.close();
  }
}
