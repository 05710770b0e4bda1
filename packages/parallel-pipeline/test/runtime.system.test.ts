import { rmSync } from 'node:fs';
import { PluginRegistry } from '@yuan/core';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpipeSchedule, partitionLayers } from '@yuan/plan';
import { pipelineEngine, type PipelineEngine, type PipelineOptions } from '../src/index.js';
import { injectStageFault } from '../src/testing.js';
import { LFA_MODULE, maxWeightDiff, packedData, relDiff, run, setupOf, single, tinyConfig, tmp } from './helpers.js';

let data: string;
beforeAll(async () => {
  await initBackend('cpu');
  data = await packedData();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STEPS = 4;

// A compact matrix: every P (2, 3 uneven, 4), both schedules, every recompute setting, both attentions, an explicit
// uneven split, and M below P (a bubble-heavy pipeline still computes the same step).
const cases: { name: string; attention: 'lfa' | 'mha'; options: Omit<PipelineOptions, 'plugins'> }[] = [
  {
    name: 'lfa pp 2 uniform, 1f1b, none, M 4',
    attention: 'lfa',
    options: {
      stages: 2,
      microbatches: 4,
      schedule: '1f1b',
      recompute: 'none',
      partition: partitionLayers('uniform', { layers: 4, stages: 2 }),
    },
  },
  {
    name: 'mha pp 2 explicit 1,3, gpipe, selective (op-by-op attention scores recomputed), M 3',
    attention: 'mha',
    options: {
      stages: 2,
      microbatches: 3,
      schedule: 'gpipe',
      recompute: 'selective',
      partition: partitionLayers('1,3', { layers: 4, stages: 2 }),
    },
  },
  {
    name: 'lfa pp 2 uniform, 1f1b, full, M 4',
    attention: 'lfa',
    options: {
      stages: 2,
      microbatches: 4,
      schedule: '1f1b',
      recompute: 'full',
      partition: partitionLayers('uniform', { layers: 4, stages: 2 }),
    },
  },
  {
    name: 'mha pp 3 explicit 1,1,2, gpipe, stage, M 3',
    attention: 'mha',
    options: {
      stages: 3,
      microbatches: 3,
      schedule: 'gpipe',
      recompute: 'stage',
      partition: partitionLayers('1,1,2', { layers: 4, stages: 3 }),
    },
  },
  {
    name: 'lfa pp 3 uniform (2,1,1), gpipe, full, M 4',
    attention: 'lfa',
    options: {
      stages: 3,
      microbatches: 4,
      schedule: 'gpipe',
      recompute: 'full',
      partition: partitionLayers('uniform', { layers: 4, stages: 3 }),
    },
  },
  {
    name: 'mha pp 4, 1f1b, stage, M 2 (< P)',
    attention: 'mha',
    options: {
      stages: 4,
      microbatches: 2,
      schedule: '1f1b',
      recompute: 'stage',
      partition: partitionLayers('uniform', { layers: 4, stages: 4 }),
    },
  },
];

describe('pipeline runtime: the same losses and parameters as the single-process trainer', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const config = tinyConfig(c.attention);
      const ref = await run(single, setupOf(config, data, STEPS, undefined, c.options.microbatches), STEPS);
      const pipe = await run(
        pipelineEngine({ ...c.options, plugins: [LFA_MODULE] }),
        setupOf(config, data, STEPS),
        STEPS,
      );
      expect(relDiff(pipe.losses, ref.losses)).toBeLessThan(1e-4);
      // no forward twice without recompute: each micro-batch through each of the 4 layers once (twice when recomputed)
      const once = c.options.microbatches * 4;
      const recomputed = c.options.recompute === 'full' || c.options.recompute === 'stage';
      expect(pipe.layerForwards).toEqual(Array(STEPS).fill(recomputed ? 2 * once : once));
      expect(maxWeightDiff(pipe.contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
      expect(maxWeightDiff(pipe.contents.optimizer.moments, ref.contents.optimizer.moments)).toBeLessThan(1e-4);
      expect([...pipe.contents.weights.keys()]).toEqual([...ref.contents.weights.keys()]);
      const reports = (pipe.engine as PipelineEngine).stageReports;
      expect(reports.map((r) => r.stage)).toEqual([...Array(c.options.stages).keys()]);
      for (const r of reports) expect(r.activationPeakBytes).toBeGreaterThan(0);
      // 1F1B holds at most min(M, P − i) micro-batches on stage i; GPipe holds all M
      const held = reports.map((r) => r.maxInFlight);
      const p = c.options.stages;
      const m = c.options.microbatches;
      expect(held).toEqual(reports.map((_, i) => (c.options.schedule === '1f1b' ? Math.min(m, p - i) : m)));
    });
  }
});

describe('resume across pipeline shapes', () => {
  it('pp 2 → pp 1 (single process) and pp 1 → pp 2 continue with the uninterrupted losses', async () => {
    const config = tinyConfig('lfa');
    const m = 2;
    const pp2 = pipelineEngine({ stages: 2, microbatches: m, partition: [3, 1], plugins: [LFA_MODULE] });
    const ref = await run(single, setupOf(config, data, STEPS, undefined, m), STEPS);
    const a = await run(pp2, setupOf(config, data, STEPS), 2);
    const a2 = await run(single, setupOf(config, data, STEPS, a.contents, m), 2);
    expect(relDiff([...a.losses, ...a2.losses], ref.losses)).toBeLessThan(1e-4);
    const b = await run(
      pipelineEngine({ stages: 1, microbatches: m, partition: [4], plugins: [LFA_MODULE] }),
      setupOf(config, data, STEPS),
      2,
    );
    const b2 = await run(pp2, setupOf(config, data, STEPS, b.contents), 2);
    expect(relDiff([...b.losses, ...b2.losses], ref.losses)).toBeLessThan(1e-4);
    expect(maxWeightDiff(b2.contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
  });
});

describe('faults stop the whole pipeline with a message naming the stage and the step', () => {
  for (const kind of ['throw', 'exit', 'oom'] as const) {
    it(`a stage that ${kind === 'oom' ? 'runs out of memory' : kind + 's'}`, async () => {
      // the test-only entry installs the fault in this thread; pipelineEngine carries it to its stage workers
      const remove = injectStageFault({ stage: 1, step: 2, kind });
      const engine = await pipelineEngine({ stages: 2, microbatches: 2, partition: [2, 2] })(
        setupOf(tinyConfig('mha'), data, STEPS),
      ).finally(remove);
      try {
        await engine.trainStep();
        const why = {
          throw: /injected fault in stage 1/,
          exit: /its worker exited with code 3/,
          oom: /ran out of memory/,
        }[kind];
        await expect(engine.trainStep()).rejects.toThrow(
          new RegExp(`^pipeline stage 1 failed at step 2: ${why.source}`),
        );
        await expect(engine.trainStep()).rejects.toThrow(/pipeline stage 1 failed at step 2/);
      } finally {
        await engine.dispose();
      }
    });
  }
});

describe('bad input', () => {
  it('partitions and options give one-line errors', async () => {
    const setup = setupOf(tinyConfig('mha'), data, STEPS);
    await expect(pipelineEngine({ stages: 2, microbatches: 0, partition: [2, 2] })(setup)).rejects.toThrow(
      /^--microbatches must be at least 1, got 0$/,
    );
    await expect(
      pipelineEngine({ stages: 2, microbatches: 2, partition: [2, 2], schedule: 'zigzag' as never })(setup),
    ).rejects.toThrow(
      /^unknown schedule "zigzag" \(registered: 1f1b, gpipe, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto\)$/,
    );
    // the runtime runs the planner's instructions, checked by the schedule simulator first: a third-party schedule
    // whose stages never send their activations is an error before any worker starts, not a hang
    const registry = new PluginRegistry();
    registry.register(
      {
        ...gpipeSchedule,
        name: 'no-sends',
        instructions: (o) => gpipeSchedule.instructions(o).filter((i) => i.op !== 'sendActivation'),
      },
      'test',
    );
    await expect(
      pipelineEngine({ stages: 2, microbatches: 2, partition: [2, 2], schedule: 'no-sends', registry })(setup),
    ).rejects.toThrow(/^deadlock: .*stage 1 at recvActivation microbatch=0 from=0$/);
  });
});
