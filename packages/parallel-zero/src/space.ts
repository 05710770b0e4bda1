import { YuanError } from '@yuan/core';
import { disposeGrads, type GradMap } from '@yuan/train';
import type { tf } from '@yuan/tensor';
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
 * How many groups of buckets may be being reduced while the backward computes the next group (2: one being reduced,
 * one just produced — DeepSpeed's double-buffered `overlap_comm`). Bounds the unreduced gradient bytes.
 */
export const GROUPS_IN_FLIGHT = 2;

/**
 * One flat gradient space [0, N) reduced across a data-parallel group, shared by the data-parallel engine and by each
 * stage of a P × D pipeline: the parameters given bucket by bucket (each bucket one contiguous range, reduced by one
 * reduce-scatter and gathered by one all-gather; rank j of D owns `shardRange` of each, `ownedRanges`), in the order
 * given. Two ways to reduce:
 * - once per step over the whole space (`reduceAll`: ZeRO 0 all-reduce, ZeRO 1 reduce-scatter);
 * - ZeRO 2, group by group during the backward (`reduceGroup`): each group's buckets are reduce-scattered as soon as
 *   its gradients exist, while the backward goes on, with at most `GROUPS_IN_FLIGHT` groups in flight; this rank's
 *   pieces are added to the step's shard in the order the groups came (deterministic sums). `drain` waits for them.
 * Errors: a gradient that is not in the space is YuanError 'internal'; a lost or silent peer rejects from the group.
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
   * The most not yet reduced gradient bytes held at once by `reduceGroup` (the groups in flight and the one handed
   * over); set it to 0 to measure a new interval.
   */
  peakInFlightBytes = 0;
  private readonly slotOf: Map<string, FlatSlot>;
  /** Where each bucket's owned piece starts in the shard buffer. */
  private readonly bucketAt: number[];
  private shard?: Float32Array;
  private inFlight: Array<{ done: Promise<void>; bytes: number }> = [];
  /** The chain that adds reduced pieces to the shard in production order. */
  private added: Promise<void> = Promise.resolve();

  constructor(
    readonly group: ProcessGroup,
    /** The parameters of each bucket, in space order (a bucket may not be empty). */
    buckets: ReadonlyArray<ReadonlyArray<{ name: string; shape: readonly number[] }>>,
  ) {
    if (buckets.some((b) => b.length === 0)) throw new YuanError('internal', 'a gradient bucket has no parameters');
    ({ slots: this.slots, total: this.total } = flatLayout(buckets.flat()));
    this.slotOf = new Map(this.slots.map((s) => [s.name, s]));
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
   * ZeRO 2: copies the group of gradients `grads` (× `weight`, in float32) into their buckets — every bucket that holds
   * one of them; the bucket's other parameters count as zero — frees the tensors, and starts each bucket's
   * reduce-scatter; resolves once fewer than `GROUPS_IN_FLIGHT` groups are still being reduced. This rank's pieces are
   * added to the step's shard (`takeShard`) in the order the groups came.
   */
  async reduceGroup(grads: GradMap, weight: number): Promise<void> {
    const flats: Array<[number, Float32Array]> = [];
    try {
      const wanted = new Set<number>();
      for (const name of grads.keys()) {
        const slot = this.slotOf.get(name);
        if (!slot) throw new YuanError('internal', `no gradient slot for ${name}`);
        wanted.add(this.buckets.findIndex((b) => slot.offset >= b.start && slot.offset < b.start + b.length));
      }
      for (const i of [...wanted].sort((a, b) => a - b)) {
        const b = this.buckets[i];
        const flat = new Float32Array(b.length);
        for (const [name, t] of grads) {
          const slot = this.slotOf.get(name)!;
          if (slot.offset >= b.start && slot.offset < b.start + b.length)
            flat.set(t.dataSync() as Float32Array, slot.offset - b.start);
        }
        for (let k = 0; k < flat.length; k++) flat[k] *= weight;
        flats.push([i, flat]);
      }
    } finally {
      disposeGrads(grads);
    }
    const bytes = flats.reduce((a, [, flat]) => a + 4 * flat.length, 0);
    this.peakInFlightBytes = Math.max(this.peakInFlightBytes, bytes + this.inFlight.reduce((a, f) => a + f.bytes, 0));
    // start every bucket's reduce-scatter now; add the pieces in production order
    const pieces = flats.map(([, flat]) => {
      const reduced = this.group.reduceScatter(flat);
      // consumed by the chain below; when an earlier group already failed the chain never reads it (no unhandled rejection)
      reduced.catch(() => {});
      return reduced;
    });
    const shard = (this.shard ??= new Float32Array(this.shardLength));
    const done = (this.added = this.added.then(async () => {
      for (const [k, piece] of (await Promise.all(pieces)).entries()) {
        const at = this.bucketAt[flats[k][0]];
        for (let j = 0; j < piece.length; j++) shard[at + j] += piece[j];
      }
    }));
    done.catch(() => {}); // awaited by drain; a failure surfaces there
    this.inFlight.push({ done, bytes });
    while (this.inFlight.length >= GROUPS_IN_FLIGHT) await this.inFlight.shift()!.done;
  }

  /** Waits until every group handed to `reduceGroup` is reduced and added to the shard; rejects with the first failure. */
  async drain(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift()!.done;
  }

  /** After a failure: waits for the reductions in flight to end either way, and forgets them and the step's shard. */
  async settle(): Promise<void> {
    this.inFlight = [];
    await this.added.catch(() => {});
    this.added = Promise.resolve();
    this.shard = undefined;
  }

  /** The step's reduced shard [shardLength] from `reduceGroup` (zeros when nothing was reduced); the next step starts a new one. Call after `drain`. */
  takeShard(): Float32Array {
    const s = this.shard ?? new Float32Array(this.shardLength);
    this.shard = undefined;
    return s;
  }

  /** All-gathers the updated parameters `all` [N] bucket by bucket and assigns each slot's values to its variable in `params`. */
  async gather(all: Float32Array, params: ReadonlyMap<string, tf.Variable>): Promise<void> {
    await allGatherParameters(this.group, all, this.slots, params, this.buckets);
  }
}
