// Measured against predicted pipeline memory: a real `--pp P` run's per-stage activation peaks (distinct TensorFlow.js
// buffers, the stage runtime's report) beside `yuan plan`'s prediction for the same shapes, for each recompute mode
// (none, selective, full, stage) and the `uniform` and `memory` partitions; the target is every stage within
// 25% of the plan. Usage: node bench/pipeline-memory.mjs [--pp 4 --layers 12 --hidden 16 --seq 8 --batch 1
// --microbatches 8 --backend cpu --recompute none,selective,full,stage]
// --smoke: 2 stages, 4 layers, 2 micro-batches, 100 documents, the `memory` partition and recompute none and full only,
// to check that the benchmark runs (the test suite does this).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig } from '@yuan/core';
import { modelParameters } from '@yuan/model';
import { trainConfig } from '@yuan/train';
import { PackWriter } from '@yuan/data';
import { pipelineEngine } from '@yuan/parallel-pipeline';
import { planPipeline } from '@yuan/plan';
import { initBackend } from '@yuan/tensor';

const smoke = process.argv.includes('--smoke');
const { values: o } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    pp: { type: 'string', default: smoke ? '2' : '4' },
    layers: { type: 'string', default: smoke ? '4' : '12' },
    hidden: { type: 'string', default: smoke ? '16' : '64' },
    seq: { type: 'string', default: smoke ? '8' : '64' },
    batch: { type: 'string', default: '1' },
    microbatches: { type: 'string', default: smoke ? '2' : '8' },
    backend: { type: 'string', default: 'cpu' },
    recompute: { type: 'string', default: smoke ? 'none,full' : 'none,selective,full,stage' },
  },
});
const [P, L, H, S, B, M] = [o.pp, o.layers, o.hidden, o.seq, o.batch, o.microbatches].map(Number);
await initBackend(o.backend);
const dir = mkdtempSync(path.join(tmpdir(), 'yuan-bench-ppmem-'));
const w = await PackWriter.create(path.join(dir, 'data'), {
  tokenizer: { name: 'bytes' },
  vocabSize: 264,
  special: { eod: 256, sep: 257, pad: 258 },
  validFraction: 0,
});
for (let i = 0; i < (smoke ? 100 : 400); i++)
  await w.addDocument([...Buffer.from(`document ${i}: some text for a pipeline, ${i * 31}`)]);
await w.finish();
const config = resolveConfig({
  model: { vocabSize: 264, hiddenSize: H, numLayers: L, numHeads: 2, ffnSize: 2 * H, maxPositions: Math.max(32, S) },
  attention: { name: 'lfa', options: {} },
  train: { seqLength: S, microBatchSize: B, gradAccumulation: M, warmupSteps: 1 },
});
const MiB = (b) => (b / 2 ** 20).toFixed(3);
const summary = [];
for (const recompute of o.recompute.split(','))
  for (const partition of smoke ? ['memory'] : ['uniform', 'memory']) {
    const plan = planPipeline({
      model: config.model,
      parameters: modelParameters(config, lfaAttention),
      attention: { plugin: lfaAttention, options: config.attention.options },
      stages: P,
      microbatches: M,
      microBatchSize: B,
      seqLength: S,
      partition,
      recompute,
      schedule: '1f1b',
      fusedKernels: o.backend === 'native',
    });
    const engine = await pipelineEngine({
      stages: P,
      microbatches: M,
      schedule: '1f1b',
      partition: plan.blocks,
      recompute,
      plugins: [import.meta.resolve('@yuan/attention-lfa')],
    })({
      config,
      train: trainConfig(config),
      attention: lfaAttention,
      data: path.join(dir, 'data'),
      seed: 1,
      totalSteps: 2,
      backend: o.backend,
    });
    await engine.trainStep();
    await engine.trainStep();
    const measured = engine.stageReports.map((r) => r.activationPeakBytes);
    await engine.dispose();
    console.log(`--recompute ${recompute} --partition ${partition}: blocks ${plan.blocks.join(',')}`);
    console.log('stage  planned act MiB  measured act MiB  ratio  planned peak MiB  measured peak MiB');
    let worst = 0;
    let off = 0;
    for (const [s, st] of plan.stages.entries()) {
      const static_ = st.weightBytes + st.gradientBytes + st.optimizerBytes;
      worst = Math.max(worst, static_ + measured[s]);
      off = Math.max(off, Math.abs(measured[s] / st.activationBytes - 1));
      console.log(
        `${String(s).padStart(5)}  ${MiB(st.activationBytes).padStart(15)}  ${MiB(measured[s]).padStart(16)}  ${(measured[s] / st.activationBytes).toFixed(2).padStart(5)}  ${MiB(st.peakBytes).padStart(16)}  ${MiB(static_ + measured[s]).padStart(17)}${st.binding ? '  <- binds' : ''}`,
      );
    }
    console.log(`binding peak: planned ${MiB(plan.peakBytes)} MiB, measured ${MiB(worst)} MiB\n`);
    summary.push([recompute, partition, off]);
  }
for (const [recompute, partition, off] of summary)
  console.log(
    `recompute ${recompute}, partition ${partition}: every stage's activations within ${(100 * off).toFixed(0)}% of the plan (target 25%)`,
  );
