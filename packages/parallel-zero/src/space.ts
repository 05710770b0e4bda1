import { YuanError } from '@yuan/core';
import { disposeGrads, type GradMap } from '@yuan/train';
import { copyTensorInto, type tf } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';
import {
  allGatherParameters,
  flatLayout,
  flattenGrads,
  ownedRanges,
  type FlatSlot,
  type GradientBucket,
} from './sharded.js';

/**
 * How many sends (the buckets one `reduceGroup` completed) may be being reduced while the backward computes the next
 * group (2: one being reduced, one just produced — DeepSpeed's double-buffered `overlap_comm`). With the buckets being
 * filled, bounds the unreduced gradient bytes.
 */
export const GROUPS_IN_FLIGHT = 2;

/** dst[at + j] += src[j] for every j (a plain function, so that the loop is optimised wherever it is called from). */
function addInto(dst: Float32Array, at: number, src: Float32Array): void {
  for (let j = 0; j < src.length; j++) dst[at + j] += src[j];
}

/** A bucket being filled by `reduceGroup`: its flat gradients so far and the parameters it still awaits. */
interface PendingBucket {
  flat: Float32Array;
  waiting: Set<string>;
}

/**
 * One flat gradient space [0, N) reduced across a data-parallel group, shared by the data-parallel engine and by each
 * stage of a P × D pipeline: the parameters given bucket by bucket (each bucket one contiguous range, reduced by one
 * reduce-scatter and gathered by one all-gather; rank j of D owns `shardRange` of each, `ownedRanges`), in the order
 * given. Two ways to reduce:
 * - once per step over the whole space (`reduceAll`: ZeRO 0 all-reduce, ZeRO 1 reduce-scatter);
 * - ZeRO 2, group by group during the backward (`reduceGroup`): each group's gradients are copied into their buckets,
 *   and a bucket is reduce-scattered as soon as it holds all its parameters' gradients — DeepSpeed's
 *   `reduce_bucket_size`: a bucket may span several groups, so a backward sends few large messages — while the
 *   backward goes on, with at most `GROUPS_IN_FLIGHT` sends in flight; this rank's pieces are added to the
 *   step's shard in the order the buckets were completed (deterministic sums). `drain` waits for them.
 * Errors: a gradient that is not in the space, one that comes twice before its bucket is complete, or a bucket left
 * incomplete at `drain`, is YuanError 'internal'; a lost or silent peer rejects from the group.
 */
export class GradientSpace {
  /** Every parameter's place in the space. */
  readonly slots: FlatSlot[];
  /** Elements of the space N. */
  readonly total: number;
  readonly buckets: GradientBucket[];
  /** This rank's piece `[start, length]` of every bucket, in bucket order: its shard of the space. */
  readonly ranges: Array<[number, number]>;
  /** Elements of the shard (the sum of the ranges' lengths). */
  readonly shardLength: number;
  /**
   * The most not yet reduced gradient bytes held at once by `reduceGroup` (the buckets being filled, those in flight
   * and those just completed); set it to 0 to measure a new interval.
   */
  peakInFlightBytes = 0;
  private readonly slotOf: Map<string, FlatSlot>;
  /** The bucket index of each parameter. */
  private readonly bucketOf: Map<string, number>;
  /** The parameters of each bucket. */
  private readonly names: string[][];
  /** Where each bucket's owned piece starts in the shard buffer. */
  private readonly bucketAt: number[];
  private shard?: Float32Array;
  /** The buckets whose pieces are already in the step's shard. */
  private written = new Set<number>();
  private pending = new Map<number, PendingBucket>();
  private inFlight: Array<{ done: Promise<void>; bytes: number }> = [];
  /** The chain that adds reduced pieces to the shard in production order. */
  private added: Promise<void> = Promise.resolve();
  /**
   * Each bucket's flat arrays whose reduced piece is already in the shard, for its next micro-batch: every backward
   * fills the same buckets, and fresh arrays (the whole gradient per micro-batch) made the garbage collector run about
   * twice as often as ZeRO 1's once-a-step flattening (bench/README.md, "Stop 32").
   */
  private spare = new Map<number, Float32Array[]>();

  constructor(
    readonly group: ProcessGroup,
    /** The parameters of each bucket, in space order (a bucket may not be empty). */
    buckets: ReadonlyArray<ReadonlyArray<{ name: string; shape: readonly number[] }>>,
  ) {
    if (buckets.some((b) => b.length === 0)) throw new YuanError('internal', 'a gradient bucket has no parameters');
    ({ slots: this.slots, total: this.total } = flatLayout(buckets.flat()));
    this.slotOf = new Map(this.slots.map((s) => [s.name, s]));
    this.names = buckets.map((b) => b.map((p) => p.name));
    this.bucketOf = new Map(this.names.flatMap((b, i) => b.map((n): [string, number] => [n, i])));
    this.buckets = [];
    let at = 0;
    for (const b of buckets) {
      const start = at;
      for (const p of b) at += this.slotOf.get(p.name)!.size;
      this.buckets.push({ start, length: at - start });
    }
    this.ranges = ownedRanges(this.buckets, group.size, group.rank);
    this.bucketAt = [];
    let shard = 0;
    for (const [, length] of this.ranges) {
      this.bucketAt.push(shard);
      shard += length;
    }
    this.shardLength = shard;
  }

  /** Whether parameter `name` is in the space. */
  has(name: string): boolean {
    return this.slotOf.has(name);
  }

  /**
   * Whole-space reduction of the step's gradients `grads` (every parameter of the space; not freed here): `allReduce`
   * gives the summed space [N] (ZeRO 0), `reduceScatter` this rank's summed shard [shardLength] (ZeRO 1). A new array.
   */
  async reduceAll(grads: GradMap, op: 'allReduce' | 'reduceScatter'): Promise<Float32Array> {
    const flat = flattenGrads(grads, this.slots, this.total);
    return op === 'allReduce' ? this.group.allReduce(flat) : (await this.group.reduceScatter(flat)).slice();
  }

  /**
   * ZeRO 2: copies the group of gradients `grads` (× `weight`, in float32) into their buckets and frees the tensors;
   * every bucket that now holds all its parameters' gradients is reduce-scattered at once, in completion order, and a
   * later gradient of one of its parameters (the tied embedding's second share) starts the bucket anew. Resolves once
   * fewer than `GROUPS_IN_FLIGHT` sends are still being reduced. This rank's pieces are added to the step's shard
   * (`takeShard`) in the order the buckets were completed.
   */
  async reduceGroup(grads: GradMap, weight: number): Promise<void> {
    const complete: Array<[number, Float32Array]> = [];
    try {
      for (const name of grads.keys())
        if (!this.slotOf.has(name)) throw new YuanError('internal', `no gradient slot for ${name}`);
      for (const [name, t] of grads) {
        const slot = this.slotOf.get(name)!;
        const i = this.bucketOf.get(name)!;
        const b = this.buckets[i];
        let p = this.pending.get(i);
        if (!p) {
          // every element is written below before the bucket is complete (its parameters tile it); a spare whose
          // buffer a transport transferred away (a piece that was the whole buffer) has length 0 and is not reused
          const spare = this.spare.get(i)?.pop();
          p = {
            flat: spare?.length === b.length ? spare : new Float32Array(b.length),
            waiting: new Set(this.names[i]),
          };
          this.pending.set(i, p);
        }
        if (!p.waiting.has(name))
          throw new YuanError('internal', `a second gradient of ${name} came before its bucket was reduced`);
        copyTensorInto(t, p.flat, slot.offset - b.start, weight);
        p.waiting.delete(name);
        if (p.waiting.size === 0) {
          this.pending.delete(i);
          complete.push([i, p.flat]);
        }
      }
    } finally {
      disposeGrads(grads);
    }
    const pendingBytes = [...this.pending.values()].reduce((a, p) => a + 4 * p.flat.length, 0);
    const bytes = complete.reduce((a, [, flat]) => a + 4 * flat.length, 0);
    this.peakInFlightBytes = Math.max(
      this.peakInFlightBytes,
      pendingBytes + bytes + this.inFlight.reduce((a, f) => a + f.bytes, 0),
    );
    if (!complete.length) return;
    // start every completed bucket's reduce-scatter now; add the pieces in completion order
    const pieces = complete.map(([, flat]) => {
      const reduced = this.group.reduceScatter(flat);
      // consumed by the chain below; when an earlier group already failed the chain never reads it (no unhandled rejection)
      reduced.catch(() => {});
      return reduced;
    });
    const shard = (this.shard ??= new Float32Array(this.shardLength));
    const written = this.written;
    const done = (this.added = this.added.then(async () => {
      for (const [k, piece] of (await Promise.all(pieces)).entries()) {
        const i = complete[k][0];
        const at = this.bucketAt[i];
        // the step's first piece of a bucket is copied, later ones added
        if (written.has(i)) addInto(shard, at, piece);
        else shard.set(piece, at);
        written.add(i);
        // the piece is a view of the flat array, which the next micro-batch may fill now
        const spare = this.spare.get(i) ?? [];
        spare.push(complete[k][1]);
        this.spare.set(i, spare);
      }
    }));
    done.catch(() => {}); // awaited by drain; a failure surfaces there
    this.inFlight.push({ done, bytes });
    while (this.inFlight.length >= GROUPS_IN_FLIGHT) await this.inFlight.shift()!.done;
  }

  /**
   * Waits until the groups in flight are reduced and added to the shard (rejects with the first failure), without
   * `drain`'s check that every bucket is complete: a new backward calls it before its first group, so that the
   * previous backward's last reductions overlap what came between (a send, the next forward) and the in-flight bytes
   * stay those of one backward.
   */
  async awaitInFlight(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift()!.done;
  }

  /** Waits until every group handed to `reduceGroup` is reduced and added to the shard; rejects with the first failure. */
  async drain(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift()!.done;
    if (this.pending.size) {
      const [i, p] = this.pending.entries().next().value!;
      this.pending.clear();
      throw new YuanError(
        'internal',
        `gradient bucket ${i} was never complete: no gradient for ${[...p.waiting.keys()].join(', ')}`,
      );
    }
  }

  /** After a failure: waits for the reductions in flight to end either way, and forgets them and the step's shard. */
  async settle(): Promise<void> {
    this.inFlight = [];
    this.pending.clear();
    await this.added.catch(() => {});
    this.added = Promise.resolve();
    this.shard = undefined;
    this.written = new Set();
  }

  /** The step's reduced shard [shardLength] from `reduceGroup` (zeros when nothing was reduced); the next step starts a new one. Call after `drain`. */
  takeShard(): Float32Array {
    const s = this.shard ?? new Float32Array(this.shardLength);
    this.shard = undefined;
    this.written = new Set();
    return s;
  }

  /** All-gathers the updated parameters `all` [N] bucket by bucket and assigns each slot's values to its variable in `params`. */
  async gather(all: Float32Array, params: ReadonlyMap<string, tf.Variable>): Promise<void> {
    await allGatherParameters(this.group, all, this.slots, params, this.buckets);
  }
}
