// Measured against predicted: a real `--pp 4` run reports each stage's peak bytes (distinct TensorFlow.js buffers);
// they match `planPipeline`'s prediction for the same shapes, and the `memory` partition lowers the binding stage's
// measured peak against `uniform` as the plan says.
import { rmSync } from 'node:fs';
import { lfaAttention } from '@yuan/attention-lfa';
import { modelParameters } from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planPipeline } from '@yuan/plan';
import { pipelineEngine, type PipelineEngine } from '../src/index.js';
import { LFA_MODULE, packedData, setupOf, tinyConfig, tmp } from './helpers.js';

let data: string;
beforeAll(async () => {
  await initBackend('cpu');
  data = await packedData();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('pipeline memory: measured against yuan plan', () => {
  it('--pp 4: every stage within 25% of the plan; memory partitioning lowers the measured binding peak', async () => {
    // B = 1, S = 8, H = 16, 12 layers, M = 8, 1F1B, full recompute: the head's logits make the last stage bind
    const config = tinyConfig('lfa', 12, { microBatchSize: 1, seqLength: 8 });
    const measure = async (partition: string) => {
      const plan = planPipeline({
        model: config.model,
        parameters: modelParameters(config, lfaAttention as never),
        attention: { plugin: lfaAttention, options: config.attention.options },
        stages: 4,
        microbatches: 8,
        microBatchSize: 1,
        seqLength: 8,
        partition,
        schedule: '1f1b',
        recompute: 'full',
        fusedKernels: false, // the cpu backend runs RMSNorm and SwiGLU as composed ops
      });
      const engine = (await pipelineEngine({
        stages: 4,
        microbatches: 8,
        schedule: '1f1b',
        partition: plan.blocks,
        recompute: 'full',
        plugins: [LFA_MODULE],
      })(setupOf(config, data, 2, undefined, 8))) as PipelineEngine;
      try {
        await engine.trainStep();
        await engine.trainStep();
        // peak activation bytes per stage (distinct buffers above what the step started with, less gradients)
        return { plan, measured: engine.stageReports.map((r) => r.activationPeakBytes) };
      } finally {
        await engine.dispose();
      }
    };
    const uniform = await measure('uniform');
    const memory = await measure('memory');
    expect(uniform.plan.blocks).toEqual([3, 3, 3, 3]);
    expect(memory.plan.blocks).not.toEqual([3, 3, 3, 3]);
    for (const { plan, measured } of [uniform, memory]) {
      for (const [s, stage] of plan.stages.entries()) {
        const ratio = measured[s] / stage.activationBytes;
        const what = `stage ${s} of ${plan.blocks.join(',')}: measured ${measured[s]} B, planned ${stage.activationBytes} B`;
        expect(ratio, what).toBeGreaterThan(0.75);
        expect(ratio, what).toBeLessThan(1.25);
      }
    }
    // the binding stage's whole peak: parameters, gradients and AdamW moments are exact (16 B per parameter in fp32),
    // the activations measured
    const peak = (r: typeof uniform) =>
      Math.max(...r.plan.stages.map((s, i) => s.weightBytes + s.gradientBytes + s.optimizerBytes + r.measured[i]));
    expect(memory.plan.peakBytes).toBeLessThan(uniform.plan.peakBytes);
    expect(peak(memory)).toBeLessThan(peak(uniform));
    expect(peak(memory) / memory.plan.peakBytes).toBeGreaterThan(0.75);
    expect(peak(memory) / memory.plan.peakBytes).toBeLessThan(1.25);
  });
});
