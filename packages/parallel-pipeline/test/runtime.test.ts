import { rmSync } from 'node:fs';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePartition, pipelineEngine, type PipelineEngine } from '../src/index.js';
import { LFA_MODULE, maxWeightDiff, packedData, relDiff, run, setupOf, single, tinyConfig, tmp } from './helpers.js';

let data: string;
beforeAll(async () => {
  await initBackend('cpu');
  data = await packedData();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STEPS = 4;

describe('pipeline runtime: the same losses and parameters as the single-process trainer', () => {
  it('smoke: pp 2, 1f1b, full recompute, lfa', async () => {
    const config = tinyConfig('lfa');
    const ref = await run(single, setupOf(config, data, STEPS, undefined, 4), STEPS);
    const pipe = await run(pipelineEngine({ stages: 2, microbatches: 4, schedule: '1f1b', partition: parsePartition('uniform', 2, 4), plugins: [LFA_MODULE] }), setupOf(config, data, STEPS), STEPS);
    console.log(ref.losses, pipe.losses, (pipe.engine as PipelineEngine).stageReports);
    expect(relDiff(pipe.losses, ref.losses)).toBeLessThan(1e-4);
    expect(maxWeightDiff(pipe.contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
  });
});
