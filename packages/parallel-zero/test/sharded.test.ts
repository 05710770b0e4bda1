// The sharded AdamW of ZeRO 1/2 against the whole-model AdamW of @yuan/train: D ranks, each updating its piece of every
// gradient bucket (buckets cut through parameters, so pieces straddle them), must give the same parameters and moments.
import type { ProcessGroup } from '@yuan/comm';
import { Rng } from '@yuan/core';
import { initBackend, liveTensorCount, tf } from '@yuan/tensor';
import { AdamW, type GradMap } from '@yuan/train';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  allGatherParameters,
  flatLayout,
  flattenGrads,
  ownedRanges,
  ShardedAdamW,
  type GradientBucket,
} from '../src/index.js';

const hyper = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
const shapes: Array<[string, number[]]> = [
  ['a.weight', [3, 5]],
  ['a.bias', [5]],
  ['b.weight', [4, 3]],
  ['norm.weight', [7]],
];
const { slots, total } = flatLayout(shapes.map(([name, shape]) => ({ name, shape })));
// two buckets, the cut inside b.weight; the ranks' shards of each bucket cut the parameters again
const buckets: GradientBucket[] = [
  { start: 0, length: 25 },
  { start: 25, length: total - 25 },
];

function params(): Map<string, tf.Variable> {
  const rng = new Rng(3);
  return new Map(
    shapes.map(([name, shape]) => [
      name,
      tf.variable(
        tf.tensor(
          Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
          shape,
        ),
      ),
    ]),
  );
}

function gradients(step: number): GradMap {
  const rng = new Rng(100 + step);
  return new Map(
    shapes.map(([name, shape]) => [
      name,
      tf.tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
        shape,
      ),
    ]),
  );
}

const flat = (p: Map<string, tf.Variable>) => flattenGrads(p as unknown as GradMap, slots, total);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

beforeAll(async () => {
  await initBackend('cpu');
});

describe('ShardedAdamW', () => {
  it.each([1, 2, 3])(
    'D = %i ranks over two buckets give the whole-model AdamW update (weight decay by parameter)',
    async (d) => {
      const reference = params();
      const whole = new AdamW(hyper);
      const ranks = Array.from({ length: d }, (_, r) => ({
        params: params(),
        opt: new ShardedAdamW(slots, total, ownedRanges(buckets, d, r), hyper),
      }));
      expect(ranks.reduce((a, r) => a + r.opt.optimizerBytes, 0)).toBe(8 * total);
      const counts: number[] = [];
      for (const [step, lr, scale] of [
        [0, 1e-2, 1],
        [1, 5e-3, 0.5],
        [2, 1e-2, 1],
        [3, 1e-2, 1],
      ] as const) {
        const grads = gradients(step);
        const scaled: GradMap = new Map([...grads].map(([n, g]) => [n, tf.mul(g, scale)]));
        whole.update(reference, scaled, lr);
        const g = flattenGrads(grads, slots, total);
        const out = new Float32Array(total);
        for (const rank of ranks) {
          const shard = new Float32Array(rank.opt.length);
          let at = 0;
          for (const [start, length] of rank.opt.ranges) {
            shard.set(g.subarray(start, start + length), at);
            at += length;
          }
          await rank.opt.update(rank.params, shard, scale, lr, out);
        }
        // every rank wrote its shard into `out`: that is what the all-gather would leave on each rank
        for (const rank of ranks)
          await allGatherParameters(
            { allGather: async () => {} } as unknown as ProcessGroup,
            out.slice(),
            slots,
            rank.params,
            buckets,
          );
        tf.dispose([...grads.values(), ...scaled.values()]);
        for (const rank of ranks) expect(maxDiff(flat(rank.params), flat(reference))).toBeLessThan(1e-6);
        counts.push(liveTensorCount());
      }
      // after the first step (which creates the moments) a step leaves no tensor behind
      expect(counts.slice(1)).toEqual([counts[1], counts[1], counts[1]]);
      // the moments, reassembled from the ranks' shard states, are the whole optimizer's
      const state = await whole.exportState();
      for (const which of ['m', 'v'] as const) {
        const full = new Float32Array(total);
        for (const rank of ranks) {
          const s = await rank.opt.shardState();
          let at = 0;
          for (const [start, length] of s.ranges) {
            full.set(s[which].subarray(at, at + length), start);
            at += length;
          }
        }
        for (const slot of slots)
          expect(
            maxDiff(full.subarray(slot.offset, slot.offset + slot.size), state.moments.get(`${which}.${slot.name}`)!),
          ).toBeLessThan(1e-7);
      }
      whole.dispose();
      tf.dispose([...reference.values()]);
      for (const rank of ranks) {
        rank.opt.dispose();
        tf.dispose([...rank.params.values()]);
      }
    },
  );

  it('restores its shard from whole-parameter moments and names a missing one', () => {
    const opt = new ShardedAdamW(slots, total, ownedRanges(buckets, 2, 1), hyper);
    const moments = new Map(
      slots.flatMap(
        (s) =>
          [
            [`m.${s.name}`, new Float32Array(s.size)],
            [`v.${s.name}`, new Float32Array(s.size)],
          ] as const,
      ),
    );
    opt.restore(moments, 4);
    expect(opt.step).toBe(4);
    moments.delete('v.b.weight');
    expect(() => opt.restore(moments, 4)).toThrow(/no v moment of b\.weight with 12 values/);
    opt.dispose();
  });
});
