// Pipeline parallelism: (1) each stage's idle time (waiting on a neighbour, as a fraction of the step up to the
// optimizer update) against the bubble (P − 1)/(M + P − 1) for M = 1, 4, 16 under 1F1B; (2) training tokens/s of
// --pp 2 against the single-process trainer with the same global batch, measured in the same run.
// Usage: node bench/pipeline.mjs [--pp 2] [--steps 4] [--layers 4] [--hidden 64] [--seq 64] [--batch 4] [--backend NAME]
// --smoke: tiny shapes (2 layers, hidden 16, 1 × 16 tokens, 1 measured step, idle time for M = 2 only; 2 micro-batches
// for the tokens/s ratio) to check that the benchmark runs (the test suite does this); its numbers mean nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig, Rng } from '@yuan/core';
import { singleProcessEngine, trainConfig } from '@yuan/train';
import { PackWriter } from '@yuan/data';
import { pipelineEngine } from '@yuan/parallel-pipeline';
import { partitionLayers } from '@yuan/plan';
import { initBackend } from '@yuan/tensor';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    pp: { type: 'string', default: '2' },
    steps: { type: 'string', default: smoke ? '1' : '4' },
    layers: { type: 'string', default: smoke ? '2' : '4' },
    hidden: { type: 'string', default: smoke ? '16' : '64' },
    seq: { type: 'string', default: smoke ? '16' : '64' },
    batch: { type: 'string', default: smoke ? '1' : '4' },
    backend: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const backend = await initBackend(values.backend);
const P = Number(values.pp);
const steps = Number(values.steps);
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-bench-pipe-'));
const dir = path.join(tmp, 'data');
const rng = new Rng(1);
const writer = await PackWriter.create(dir, {
  tokenizer: { name: 'bytes' },
  vocabSize: 264,
  special: { eod: 256, sep: 257, pad: 258 },
  validFraction: 0,
});
for (let d = 0; d < (smoke ? 20 : 200); d++)
  await writer.addDocument(Array.from({ length: 200 + rng.int(800) }, () => 32 + rng.int(90)));
await writer.finish();

const H = Number(values.hidden);
const config = (m) =>
  resolveConfig({
    model: {
      vocabSize: 264,
      hiddenSize: H,
      numLayers: Number(values.layers),
      numHeads: 4,
      ffnSize: 4 * H,
      maxPositions: Number(values.seq),
    },
    attention: { name: 'lfa', options: {} },
    train: {
      seqLength: Number(values.seq),
      microBatchSize: Number(values.batch),
      gradAccumulation: m,
      warmupSteps: 1,
      checkpointEvery: 0,
    },
  });
const setup = (m) => ({
  config: config(m),
  train: trainConfig(config(m)),
  attention: lfaAttention,
  data: dir,
  seed: 0,
  totalSteps: steps + 1,
  backend: backend.name,
});
const plugins = [import.meta.resolve('@yuan/attention-lfa')];

/** Runs one warm-up step and `steps` measured ones; returns tokens/s and the per-stage reports of the measured steps. */
async function measure(factory, m) {
  const engine = await factory(setup(m));
  try {
    await engine.trainStep();
    let tokens = 0;
    let seconds = 0;
    const reports = [];
    for (let i = 0; i < steps; i++) {
      const r = await engine.trainStep();
      tokens += r.tokens;
      seconds += r.seconds;
      if (engine.stageReports) reports.push(engine.stageReports);
    }
    return { tokensPerSecond: tokens / seconds, reports };
  } finally {
    await engine.dispose();
  }
}

console.log(
  `backend ${backend.name}; ${Number(values.layers)} layers, hidden ${H}, ${values.batch} × ${values.seq} tokens per micro-batch; ${steps} measured steps`,
);
console.log(`\nidle time per stage (1f1b, --pp ${P}) against the bubble (P − 1)/(M + P − 1):`);
const uniform = (stages) => partitionLayers('uniform', { layers: Number(values.layers), stages });
for (const m of smoke ? [2] : [1, 4, 16]) {
  const { reports } = await measure(
    pipelineEngine({ stages: P, microbatches: m, schedule: '1f1b', partition: uniform(P), plugins }),
    m,
  );
  const idle = [...Array(P).keys()].map(
    (s) => reports.reduce((a, r) => a + r[s].waitMs, 0) / reports.reduce((a, r) => a + r[s].stepMs, 0),
  );
  const bubble = (P - 1) / (m + P - 1);
  console.log(
    `  M ${String(m).padStart(2)}: bubble ${(bubble * 100).toFixed(1)}%  measured idle ${idle.map((x, s) => `stage ${s} ${(x * 100).toFixed(1)}%`).join(', ')}`,
  );
}

const M = smoke ? 2 : 8;
const base = await measure(singleProcessEngine, M);
const pipe = await measure(
  pipelineEngine({ stages: 2, microbatches: M, schedule: '1f1b', partition: uniform(2), plugins, threadsPerStage: 1 }),
  M,
);
console.log(
  `\ntokens/s, global batch ${M} micro-batches: single process ${base.tokensPerSecond.toFixed(0)}, --pp 2 ${pipe.tokensPerSecond.toFixed(0)}: ratio ${(pipe.tokensPerSecond / base.tokensPerSecond).toFixed(2)}x`,
);
rmSync(tmp, { recursive: true, force: true });
