import { describe, expect, it } from 'vitest';
import {
  costAwareZbvActions,
  formatActionLists,
  getSchedule,
  lowerActions,
  partitionLayers,
  simulateSchedule,
  vShapePartition,
  vShapeStep,
  type PassCosts,
  type ScheduleActions,
} from './index.js';
import { zbvActions } from './generators.js';

const run = (a: ScheduleActions, c: readonly PassCosts[]) => {
  const P = a.ranks.length;
  const totalF = c.reduce((s, x) => s + x.forward, 0);
  return simulateSchedule(
    a.ranks.map((_, r) => lowerActions(a, r)),
    {
      forwardCost: c.map((x) => x.forward),
      backwardInputCost: c.map((x) => x.backwardInput),
      backwardWeightCost: c.map((x) => x.backwardWeight),
      stageWeights: c.map((x) => (x.forward * P) / totalF),
    },
  );
};

// the bench's measured kept-tape times of one layer (hidden 512, 128 tokens), ms
const LAYER = { forward: 223, backwardInput: 255, backwardWeight: 174 };

describe('zb-v-auto', () => {
  it('equal costs, M >= 2P − 1: the handcrafted (PyTorch-equal) ZB-V lists, which the greedy orders do not beat', () => {
    for (const [P, M] of [
      [2, 4],
      [4, 8],
      [4, 16],
    ]) {
      const auto = getSchedule('zb-v-auto').actions!({ stages: P, microbatches: M });
      expect(formatActionLists(auto.ranks)).toBe(formatActionLists(zbvActions(P, M).ranks));
    }
    // a pipeline that never fills (M < 2P − 1): the handcrafted order with its missing micro-batches dropped is not
    // the shortest, and the greedy order that is replaces it
    const eq = Array.from({ length: 8 }, () => ({ forward: 1, backwardInput: 1, backwardWeight: 1 }));
    const short = getSchedule('zb-v-auto').actions!({ stages: 4, microbatches: 4 });
    expect(run(short, eq).makespan).toBeLessThan(run(zbvActions(4, 4), eq).makespan);
  });

  it('uneven chunks: valid lists (every pass once, in order, no deadlock) no slower than zb-v, at 1F1B peak', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 0.9 + 0.1;
    let faster = 0;
    for (let k = 0; k < 30; k++) {
      const P = 2 + (k % 4);
      const M = [P, 2 * P, 3 * P + 1][k % 3];
      const c = Array.from({ length: 2 * P }, () => ({
        forward: rand(),
        backwardInput: rand(),
        backwardWeight: rand(),
      }));
      const auto = costAwareZbvActions(P, M, c);
      const sim = run(auto, c); // throws on a deadlock, a missing or repeated pass, an out-of-order message
      const hand = run(zbvActions(P, M), c);
      expect(sim.makespan).toBeLessThanOrEqual(hand.makespan * (1 + 1e-9));
      if (sim.makespan < hand.makespan * (1 - 1e-6)) {
        faster++;
        expect(Math.max(...sim.maxInFlight)).toBeLessThanOrEqual(P + 1e-9);
      }
    }
    expect(faster).toBeGreaterThan(0);
  });

  it('one-line errors: wrong number of stage costs, non-positive costs, memory below 1F1B', () => {
    expect(() => costAwareZbvActions(2, 4, [LAYER])).toThrow(
      /^a V over 2 ranks needs pass costs for 4 virtual stages \(got 1\)$/,
    );
    expect(() => costAwareZbvActions(1, 4, [LAYER, { ...LAYER, forward: 0 }])).toThrow(
      /^virtual stage 1: pass cost forward must be a number > 0 \(got 0\)$/,
    );
    expect(() => costAwareZbvActions(2, 4, undefined, undefined, 0.5)).toThrow(/memory limit must be a number >= 1/);
  });
});

describe('v-shape partition', () => {
  it('at P = 4, M = 8 from the measured layer times: no slower than the uniform V; blocks sum to L', () => {
    const input = { layers: 16, ranks: 4, microbatches: 8, layerCosts: LAYER, lastCosts: { forward: 40 } };
    const blocks = vShapePartition(input);
    expect(blocks).toHaveLength(8);
    expect(blocks.reduce((a, b) => a + b, 0)).toBe(16);
    expect(Math.min(...blocks)).toBeGreaterThanOrEqual(1);
    const uniform = vShapeStep(input, [2, 2, 2, 2, 2, 2, 2, 2]);
    expect(vShapeStep(input, blocks).makespan).toBeLessThanOrEqual(uniform.makespan);
  });

  it('an expensive head moves layers off the last virtual stage', () => {
    const blocks = vShapePartition({
      layers: 16,
      ranks: 2,
      microbatches: 8,
      layerCosts: LAYER,
      lastCosts: { forward: 3 * 223, backwardInput: 3 * 255, backwardWeight: 3 * 174 },
    });
    expect(blocks[3]).toBeLessThan(4);
  });

  it('through partitionLayers: needs the costs; one-line errors', () => {
    expect(() => partitionLayers('v-shape', { layers: 8, stages: 4 })).toThrow(
      /^partition "v-shape" needs per-layer pass times and the micro-batches/,
    );
    expect(() => partitionLayers('v-shape', { layers: 8, stages: 4, layerCosts: LAYER, microbatches: 4 })).toThrow(
      /^partition "v-shape" splits a V of 2 chunks per rank, but the schedule has 4 stage\(s\) on 4 rank\(s\): use it with zb-v-auto or zb-v$/,
    );
    expect(
      partitionLayers('v-shape', { layers: 8, stages: 4, ranks: 2, layerCosts: LAYER, microbatches: 4 }),
    ).toHaveLength(4);
    expect(() => vShapePartition({ layers: 6, ranks: 4, microbatches: 8, layerCosts: LAYER })).toThrow(
      /^a V over 4 ranks needs at least 8 layers \(got 6\)$/,
    );
  });
});
