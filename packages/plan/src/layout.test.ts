import { resolveConfig, type JsonObject, type YuanConfig } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { parallelLayout, withParallelLayout, type LayoutNaming } from './layout.js';

const config = (parallel?: JsonObject, train?: JsonObject): YuanConfig =>
  resolveConfig({ ...(parallel ? { parallel } : {}), ...(train ? { train } : {}) });
const flags: LayoutNaming['flags'] = {
  pp: '--pp',
  dp: '--dp',
  zero: '--zero',
  partition: '--partition',
  schedule: '--schedule',
  recompute: '--recompute',
  transport: '--transport',
  microbatches: '--microbatches',
};

describe('parallelLayout', () => {
  it('fills the defaults: without a parallel section it is the single-process trainer', () => {
    expect(parallelLayout(config())).toEqual({
      pp: 1,
      dp: 1,
      zero: 0,
      partition: 'uniform',
      schedule: '1f1b',
      recompute: 'none',
      transport: 'threads',
      microbatches: 1,
    });
    expect(parallelLayout(config(undefined, { gradAccumulation: 6 })).microbatches).toBe(6);
  });

  it('keeps a whole layout, and blocks written as an array or a number become a blocks string', () => {
    const l = parallelLayout(
      config({
        pp: 4,
        dp: 3,
        zero: 2,
        partition: [1, 1, 1, 1],
        schedule: 'gpipe',
        recompute: 'stage',
        transport: 'tcp',
        microbatches: 12,
      }),
    );
    expect(l).toEqual({
      pp: 4,
      dp: 3,
      zero: 2,
      partition: '1,1,1,1',
      schedule: 'gpipe',
      recompute: 'stage',
      transport: 'tcp',
      microbatches: 12,
    });
    expect(parallelLayout(config({ partition: 4 })).partition).toBe('4');
  });

  it('a bad value or an unknown field is a one-line error naming parallel.<field>', () => {
    const cases: [JsonObject, string][] = [
      [{ zero: 3 }, 'invalid config: parallel.zero = 3; expected an integer >= 0 <= 2'],
      [{ pp: 0 }, 'invalid config: parallel.pp = 0; expected an integer >= 1'],
      [{ dp: 'two' }, 'invalid config: parallel.dp = "two"; expected an integer >= 1'],
      [
        { stages: 2 },
        'invalid config: unknown field parallel.stages; known fields: pp, partition, schedule, recompute, microbatches, dp, zero, transport',
      ],
      [
        { partition: '2,,2' },
        'invalid config: parallel.partition = "2,,2"; expected blocks of comma-separated layer counts, each at least 1, such as "2,2,3,3" or "2x10,3x20,2x2"',
      ],
    ];
    for (const [section, message] of cases)
      expect(() => parallelLayout(config(section)), JSON.stringify(section)).toThrow(message);
    expect(() => parallelLayout(config({ recompute: 'block' }))).toThrow(
      /^invalid config: parallel\.recompute = "block"; expected "none", "selective", "full" or "stage"$/,
    );
  });

  it('a launched world gives D = WORLD_SIZE / P and must be P × D', () => {
    expect(parallelLayout(config({ pp: 2, microbatches: 4 }), { worldSize: 4 }).dp).toBe(2);
    expect(() => parallelLayout(config({ pp: 2 }), { worldSize: 3 })).toThrow(
      'the world has 3 ranks, not a multiple of parallel.pp = 2: WORLD_SIZE must be P × D',
    );
    expect(() => parallelLayout(config({ pp: 2, dp: 2, microbatches: 4 }), { worldSize: 2 })).toThrow(
      'the world has 2 ranks but parallel.pp = 2 × parallel.dp = 2 needs 4: WORLD_SIZE must be P × D',
    );
    // named by their flags where flags set them
    const naming = { flags, given: ['pp', 'dp'] as const };
    expect(() => parallelLayout(config({ pp: 2, dp: 2, microbatches: 4 }), { worldSize: 2, naming })).toThrow(
      'the world has 2 ranks but --pp 2 × --dp 2 needs 4',
    );
    expect(() => parallelLayout(config({ dp: 3, microbatches: 3 }), { worldSize: 2, naming })).toThrow(
      'the world has 2 ranks but --dp is 3: start as many ranks as --dp (or leave it out)',
    );
  });

  it('M: D must divide it; parallel.microbatches and train.gradAccumulation must agree', () => {
    expect(() => parallelLayout(config({ dp: 3, microbatches: 4 }))).toThrow(
      /^parallel\.dp = 3 does not divide the step's 4 micro-batches/,
    );
    expect(() => parallelLayout(config({ microbatches: 8 }, { gradAccumulation: 4 }))).toThrow(
      'parallel.microbatches = 8 and train.gradAccumulation = 4 disagree',
    );
    expect(parallelLayout(config({ microbatches: 4 }, { gradAccumulation: 4 })).microbatches).toBe(4);
  });

  it('a field given as a flag that the layout would ignore is an error; from the config, or in a plan, it is not', () => {
    expect(() => parallelLayout(config({ partition: '9,9' }), { naming: { flags, given: ['partition'] } })).toThrow(
      '--partition applies to a pipeline: add --pp P (P > 1)',
    );
    expect(() => parallelLayout(config({ zero: 1 }), { naming: { flags, given: ['zero'] } })).toThrow(
      /^--zero applies to data parallelism: add --dp D /,
    );
    expect(() => parallelLayout(config({ transport: 'tcp' }), { naming: { flags, given: ['transport'] } })).toThrow(
      /^--transport applies to parallel runs: add --dp D or --pp P /,
    );
    expect(
      parallelLayout(config({ zero: 1, microbatches: 2 }), { worldSize: 2, naming: { flags, given: ['zero'] } }).dp,
    ).toBe(2); // a launched world is data parallelism
    expect(parallelLayout(config({ zero: 1, schedule: 'gpipe' })).zero).toBe(1);
    expect(parallelLayout(config({ zero: 1 }), { naming: { flags, given: ['zero'] }, rejectIgnored: false }).zero).toBe(
      1,
    );
  });

  it('withParallelLayout puts the resolved layout and its M (as train.gradAccumulation) into the config the ranks get', () => {
    const c = config({ pp: 2, dp: 2, zero: 1, microbatches: 4 }, { lr: 0.01 });
    const run = withParallelLayout(c, parallelLayout(c));
    expect(run.parallel).toEqual({
      pp: 2,
      dp: 2,
      zero: 1,
      partition: 'uniform',
      schedule: '1f1b',
      recompute: 'none',
      transport: 'threads',
      microbatches: 4,
    });
    expect(run.train).toEqual({ lr: 0.01, gradAccumulation: 4 });
    expect(parallelLayout(JSON.parse(JSON.stringify(run)) as YuanConfig)).toEqual(run.parallel);
  });
});
