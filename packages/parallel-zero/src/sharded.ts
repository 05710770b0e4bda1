import { YuanError } from '@yuan/core';
import type { GradMap } from '@yuan/train';
import { adamwStep, copyTensorInto, tf } from '@yuan/tensor';
import { shardRange, type ProcessGroup } from '@yuan/comm';

/** One parameter's place in a flat parameter space [0, N) (float32 elements, in the order given). */
export interface FlatSlot {
  name: string;
  shape: number[];
  /** First element of the parameter in the flat space. */
  offset: number;
  /** Elements of the parameter (product of `shape`). */
  size: number;
  /** Decoupled weight decay applies: parameters with more than one dimension (decided by parameter, as Megatron). */
  decay: boolean;
}

/** The flat layout of parameters `[name, shape]` in the order given: slots and the total element count N. */
export function flatLayout(params: Iterable<{ name: string; shape: readonly number[] }>): {
  slots: FlatSlot[];
  total: number;
} {
  const slots: FlatSlot[] = [];
  let offset = 0;
  for (const p of params) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    slots.push({ name: p.name, shape: [...p.shape], offset, size, decay: p.shape.length > 1 });
    offset += size;
  }
  return { slots, total: offset };
}

/** The gradients of `grads` as one flat Float32Array [N] in the slots' order (each slot's gradient must be present). */
export function flattenGrads(grads: GradMap, slots: readonly FlatSlot[], total: number): Float32Array {
  const flat = new Float32Array(total);
  for (const slot of slots) {
    const g = grads.get(slot.name);
    if (!g) throw new YuanError('internal', `no gradient for ${slot.name}`);
    copyTensorInto(g, flat, slot.offset);
  }
  return flat;
}

/** AdamW hyper-parameters of the sharded optimizer (the learning rate comes per update). */
export interface ShardedAdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Applied to the slots with `decay` only. */
  weightDecay: number;
}

/** The part of one parameter that falls in this rank's shard, with its AdamW moments. */
interface Segment {
  slot: FlatSlot;
  /** Offset inside the parameter. */
  from: number;
  length: number;
  /** Offset inside the shard buffer (the concatenation of the shard's ranges). */
  at: number;
  m: tf.Variable;
  v: tf.Variable;
}

/**
 * AdamW over one rank's shard of a flat parameter space (Megatron's distributed optimizer, ZeRO stage 1/2): the shard
 * is one or more ranges `[start, length)` (one per gradient bucket, `ownedRanges`), held as one buffer that
 * concatenates them in order. The moments m and v exist only for the shard (8 bytes per shard element), weight decay is
 * decided per parameter by name (`FlatSlot.decay`), never by the shape of the flat shard. `update` writes the updated
 * shard into a whole-space buffer that the caller all-gathers (`allGatherParameters`). Used by the data-parallel engine
 * and by each pipeline stage of a P × D run.
 */
export class ShardedAdamW {
  /** Completed updates (the bias-correction step). */
  step = 0;
  private readonly segments: Segment[] = [];
  /** Elements of the shard (the sum of the ranges' lengths). */
  readonly length: number;

  constructor(
    readonly slots: readonly FlatSlot[],
    readonly total: number,
    readonly ranges: ReadonlyArray<readonly [start: number, length: number]>,
    private readonly options: ShardedAdamWOptions,
  ) {
    let at = 0;
    for (const [start, length] of ranges) {
      for (const slot of slots) {
        const from = Math.max(start, slot.offset);
        const to = Math.min(start + length, slot.offset + slot.size);
        if (to <= from) continue;
        this.segments.push({
          slot,
          from: from - slot.offset,
          length: to - from,
          at: at + from - start,
          m: tf.variable(tf.zeros([to - from]), false),
          v: tf.variable(tf.zeros([to - from]), false),
        });
      }
      at += length;
    }
    this.length = at;
  }

  /** Bytes of the moments this rank holds (8 per shard element). */
  get optimizerBytes(): number {
    return this.segments.reduce((a, s) => a + 8 * s.length, 0);
  }

  /** Loads this shard's moments from whole-parameter moments (`m.<name>`, `v.<name>`); a missing or short one is YuanError 'checkpoint'. */
  restore(moments: ReadonlyMap<string, Float32Array>, step: number): void {
    this.step = step;
    for (const seg of this.segments) {
      for (const [which, target] of [
        ['m', seg.m],
        ['v', seg.v],
      ] as const) {
        const full = moments.get(`${which}.${seg.slot.name}`);
        if (!full || full.length !== seg.slot.size)
          throw new YuanError(
            'checkpoint',
            `the optimizer state has no ${which} moment of ${seg.slot.name} with ${seg.slot.size} values`,
          );
        const t = tf.tensor1d(full.subarray(seg.from, seg.from + seg.length));
        target.assign(t);
        t.dispose();
      }
    }
  }

  /**
   * One AdamW step on the shard: `gradShard` [length] (already reduced; multiplied by `scale`, the clipping factor),
   * learning rate `lr`. Writes the updated parameter values into `out` [N] at the shard's place (the rest of `out` is
   * left alone) for the all-gather; the parameters themselves are not assigned here.
   */
  async update(
    params: ReadonlyMap<string, tf.Variable>,
    gradShard: Float32Array,
    scale: number,
    lr: number,
    out: Float32Array,
  ): Promise<void> {
    this.step += 1;
    for (const seg of this.segments) {
      const variable = params.get(seg.slot.name);
      if (!variable) throw new YuanError('internal', `no parameter ${seg.slot.name}`);
      const [p2, m2, v2] = tf.tidy(() => {
        const p = tf.slice(tf.reshape(variable, [-1]), [seg.from], [seg.length]);
        let g: tf.Tensor = tf.tensor1d(gradShard.subarray(seg.at, seg.at + seg.length));
        if (scale !== 1) g = tf.mul(g, scale);
        const wd = seg.slot.decay ? this.options.weightDecay : 0;
        return adamwStep(p, g, seg.m, seg.v, {
          lr,
          beta1: this.options.beta1,
          beta2: this.options.beta2,
          eps: this.options.eps,
          weightDecay: wd,
          step: this.step,
        });
      });
      seg.m.assign(m2);
      seg.v.assign(v2);
      out.set((await p2.data()) as Float32Array, seg.slot.offset + seg.from);
      tf.dispose([p2, m2, v2]);
    }
  }

  /**
   * This rank's part of the state for a checkpoint shard file: the ranges, and m and v over the shard buffer
   * (concatenated ranges, `length` values each).
   */
  async shardState(): Promise<{ ranges: Array<[number, number]>; m: Float32Array; v: Float32Array }> {
    const m = new Float32Array(this.length);
    const v = new Float32Array(this.length);
    for (const seg of this.segments) {
      m.set((await seg.m.data()) as Float32Array, seg.at);
      v.set((await seg.v.data()) as Float32Array, seg.at);
    }
    return { ranges: this.ranges.map(([s, l]) => [s, l]), m, v };
  }

  /** Frees the moment variables. */
  dispose(): void {
    for (const s of this.segments) {
      s.m.dispose();
      s.v.dispose();
    }
    this.segments.length = 0;
  }
}

/**
 * A contiguous range of the flat space reduced by one reduce-scatter and gathered by one all-gather; rank j of D owns
 * `shardRange(length, D, j)` of it (offset by `start`).
 */
export interface GradientBucket {
  start: number;
  length: number;
}

/** The ranges `[start, length]` of the flat space that rank `rank` of `d` owns: its piece of every bucket, in bucket order. */
export function ownedRanges(buckets: readonly GradientBucket[], d: number, rank: number): Array<[number, number]> {
  return buckets.map((b) => {
    const [offset, length] = shardRange(b.length, d, rank);
    return [b.start + offset, length];
  });
}

/**
 * All-gathers the flat parameters `all` [N] over `group` (bucket by bucket when `buckets` are given, else the whole
 * space as one bucket) and assigns every slot's values to its variable in `params`.
 */
export async function allGatherParameters(
  group: ProcessGroup,
  all: Float32Array,
  slots: readonly FlatSlot[],
  params: ReadonlyMap<string, tf.Variable>,
  buckets?: readonly GradientBucket[],
): Promise<void> {
  if (buckets) for (const b of buckets) await group.allGather(all.subarray(b.start, b.start + b.length));
  else await group.allGather(all);
  for (const slot of slots) {
    const v = params.get(slot.name);
    if (!v) throw new YuanError('internal', `no parameter ${slot.name}`);
    const t = tf.tensor(all.subarray(slot.offset, slot.offset + slot.size), slot.shape);
    v.assign(t);
    t.dispose();
  }
}
