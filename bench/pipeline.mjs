// Pipeline parallelism: (1) each stage's idle time (waiting on a neighbour, as a fraction of the step up to the
// optimizer update) against the bubble (P − 1)/(M + P − 1) for M = 1, 4, 16 under 1F1B; (2) training tokens/s of
// --pp 2 against the single-process trainer with the same global batch, measured in the same run; (3) per schedule
// (gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-h2, zb-v): the measured idle on real workers (P = 2; the schedules the
// runtime runs), the simulator's prediction from the measured F, I, W of a stage's layers for P = 2, 4, 8 (M = 8), and
// the formula. I and W are measured as our split backward computes them under full recompute: I recomputes each layer's
// forward and takes dL/d(input) only, W recomputes it and takes the weight gradients only; B is the full backward.
// Usage: node bench/pipeline.mjs [--pp 2] [--steps 4] [--layers 4] [--hidden 64] [--seq 64] [--batch 4] [--backend NAME]
// --smoke: tiny shapes (2 layers, hidden 16, 1 × 16 tokens, 1 measured step, idle time for M = 2 only; 2 micro-batches
// for the tokens/s ratio) to check that the benchmark runs (the test suite does this); its numbers mean nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig, Rng } from '@yuan/core';
import { LayerRange, singleProcessEngine, trainConfig } from '@yuan/train';
import { PackWriter } from '@yuan/data';
import { pipelineEngine } from '@yuan/parallel-pipeline';
import { buildSchedule, getSchedule, partitionLayers, simulateSchedule } from '@yuan/plan';
import { initBackend, tf } from '@yuan/tensor';

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

// (3) schedules: F, I, W of one stage's layers (L/2 of them, a middle stage: no embedding, no head), median of R
const R = smoke ? 1 : 5;
const half = Math.max(1, Math.floor(Number(values.layers) / 2));
const range = LayerRange.init(config(1), lfaAttention, 0, {
  embedding: false,
  head: false,
  firstLayer: 0,
  endLayer: half,
});
const shape = [Number(values.batch), Number(values.seq), H];
const x0 = tf.randomNormal(shape);
const dy = tf.randomNormal(shape);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const timed = async (fn) => {
  const t = [];
  await fn(); // warm-up
  for (let i = 0; i < R; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
};
const layerOf = (layer) => (x) => layer.layers(x, {}).hidden;
const fwd = () => {
  const kept = range.forwardKeeping({}, x0);
  return kept;
};
const Fms = await timed(async () => {
  const kept = fwd();
  await kept.output.data();
  for (const t of kept.inputs.slice(1)) t.dispose();
  kept.output.dispose();
});
const kept = fwd();
const Bms = await timed(async () => {
  const r = await range.backward({}, kept, dy, async (_g, grads) => {
    for (const g of grads.values()) g.dispose();
  });
  await r.dx.data();
  r.dx.dispose();
});
const Ims = await timed(async () => {
  let up = dy;
  for (let l = range.layers.length - 1; l >= 0; l--) {
    const dx = tf.grad(layerOf(range.layers[l]))(kept.inputs[l], up);
    if (up !== dy) up.dispose();
    up = dx;
  }
  await up.data();
  up.dispose();
});
const Wms = await timed(async () => {
  for (let l = range.layers.length - 1; l >= 0; l--) {
    const layer = range.layers[l];
    const { value, grads } = tf.variableGrads(
      () => tf.tidy(() => tf.sum(tf.mul(layerOf(layer)(kept.inputs[l]), dy))),
      [...layer.params.values()],
    );
    value.dispose();
    for (const g of Object.values(grads)) {
      await g.data();
      g.dispose();
    }
  }
});
for (const t of kept.inputs.slice(1)) t.dispose();
kept.output.dispose();
x0.dispose();
dy.dispose();
console.log(
  `\nschedules: a stage of ${half} layer(s), median of ${R}: F ${Fms.toFixed(2)} ms, B ${Bms.toFixed(2)} ms, I ${Ims.toFixed(2)} ms, W ${Wms.toFixed(2)} ms (B/F ${(Bms / Fms).toFixed(2)}, I/F ${(Ims / Fms).toFixed(2)}, W/F ${(Wms / Fms).toFixed(2)})`,
);
const SCHEDULES = ['gpipe', '1f1b', 'interleaved-1f1b', 'zb-h1', 'zb-h2', 'zb-v'];
const MS = smoke ? 2 : 8;
/** The formula of each schedule's idle share of a step (per-stage F, B = I + W; Qi et al. 2024 Table 1/§6). */
const formula = {
  gpipe: (P, M, f, b) => ((P - 1) * (f + b)) / ((M + P - 1) * (f + b)),
  '1f1b': (P, M, f, b) => ((P - 1) * (f + b)) / ((M + P - 1) * (f + b)),
  'interleaved-1f1b': (P, M, f, b) => ((P - 1) * (f + b)) / (2 * M * (f + b) + (P - 1) * (f + b)),
  'zb-h1': (P, M, f, _b, i, w) =>
    Math.max(0, (P - 1) * (f + i - w)) / (M * (f + i + w) + Math.max(0, (P - 1) * (f + i - w))),
  'zb-h2': (P, M, f, _b, i, w) =>
    Math.max(0, (P - 1) * (f + i - 2 * w)) / (M * (f + i + w) + Math.max(0, (P - 1) * (f + i - 2 * w))),
  'zb-v': (P, M, f, _b, i, w) =>
    Math.max(0, ((P - 1) * (f + i - 2 * w)) / 2) / (M * (f + i + w) + Math.max(0, ((P - 1) * (f + i - 2 * w)) / 2)),
};
const costs = { forward: Fms, backwardInput: Ims, backwardWeight: Wms };
const predict = (name, P) => {
  const chunks = getSchedule(name).chunks ?? 1;
  const lists = Array.from({ length: P }, (_, s) =>
    buildSchedule(name, { stages: P, microbatches: MS, stage: s, costs }),
  );
  const split = name.startsWith('zb');
  const r = simulateSchedule(lists, {
    forwardCost: Fms / chunks,
    backwardInputCost: Ims / chunks,
    backwardWeightCost: Wms / chunks,
    ...(split ? {} : { backwardCost: Bms / chunks }),
  });
  return Math.max(...r.idleFraction);
};
console.log(
  `idle share of a step per schedule, M = ${MS} (predicted: simulated from the measured F, I, W; B for unsplit schedules):`,
);
const rows = [];
for (const name of SCHEDULES) {
  let measured = 'not run (the runtime runs gpipe and 1f1b)';
  if (name === 'gpipe' || name === '1f1b') {
    const { reports } = await measure(
      pipelineEngine({ stages: 2, microbatches: MS, schedule: name, partition: uniform(2), plugins }),
      MS,
    );
    const idle = [0, 1].map(
      (st) => reports.reduce((a, r) => a + r[st].waitMs, 0) / reports.reduce((a, r) => a + r[st].stepMs, 0),
    );
    const m = Math.max(...idle);
    measured = `${(100 * m).toFixed(1)}% (predicted P=2 ${(100 * predict(name, 2)).toFixed(1)}%, off by ${(100 * Math.abs(m - predict(name, 2))).toFixed(1)} points)`;
  }
  const [f, b, i, w] = [Fms, Bms, Ims, Wms];
  const pred = [2, 4, 8].map((P) => `P=${P} ${(100 * predict(name, P)).toFixed(1)}%`).join(', ');
  const form = [2, 4, 8].map((P) => `${(100 * formula[name](P, MS, f, b, i, w)).toFixed(1)}%`).join('/');
  rows.push({ name, p4: predict(name, 4) });
  console.log(`  ${name.padEnd(17)} predicted ${pred}; formula ${form}; measured P=2: ${measured}`);
}
const p4 = Object.fromEntries(rows.map((r) => [r.name, r.p4]));
console.log(
  `target (P = 4, M = ${MS}, simulated from measured times): zb-v ${(100 * p4['zb-v']).toFixed(1)}% idle against 1f1b's ${(100 * p4['1f1b']).toFixed(1)}%: ratio ${(p4['zb-v'] / p4['1f1b']).toFixed(2)}`,
);
rmSync(tmp, { recursive: true, force: true });
