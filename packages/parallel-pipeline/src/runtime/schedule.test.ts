import { describe, expect, it } from 'vitest';
import { chunksOf, partitionCosts, stagePrograms } from './schedule.js';

describe('stagePrograms', () => {
  it('gives every schedule with its placement: one stage per rank, or virtual stages (interleaved, ZB-V)', () => {
    expect(stagePrograms('1f1b', 2, 4).placement).toEqual([0, 1]);
    expect(
      stagePrograms('zb-h1', 2, 4)
        .programs.flat()
        .some((i) => i.op === 'backwardWeight'),
    ).toBe(true);
    expect(stagePrograms('interleaved-1f1b', 2, 4).placement).toEqual([0, 1, 0, 1]);
    expect(stagePrograms('zb-v', 2, 4).placement).toEqual([0, 1, 1, 0]);
  });

  it("passes per virtual stage costs from one layer's to a cost-ordered schedule (zb-v-auto)", () => {
    const layer = { forward: 1, backwardInput: 1.2, backwardWeight: 0.8 };
    expect(partitionCosts([1, 2], layer)).toEqual([layer, { forward: 2, backwardInput: 2.4, backwardWeight: 1.6 }]);
    expect(partitionCosts([1, 2])).toBeUndefined();
    const plain = stagePrograms('zb-v-auto', 2, 4).programs;
    expect(plain).toEqual(stagePrograms('zb-v', 2, 4).programs);
    expect(stagePrograms('zb-v-auto', 2, 4, undefined, partitionCosts([1, 2, 1, 2], layer)).programs).not.toEqual(
      plain,
    );
  });

  it('lays a partition over the virtual stages onto the ranks, and names a partition of the wrong length', () => {
    expect(chunksOf([1, 2, 1, 2], [0, 1, 1, 0], 0, 6)).toEqual([
      { stage: 0, firstLayer: 0, endLayer: 1 },
      { stage: 3, firstLayer: 4, endLayer: 6 },
    ]);
    expect(() => chunksOf([3, 3], [0, 1, 1, 0], 0, 6)).toThrow(
      /^partition 3,3 is not 4 positive layer counts summing to 6 \(the schedule has 4 virtual stages\)$/,
    );
  });
});
