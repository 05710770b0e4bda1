// Pipeline parallelism: (1) each stage's idle time (waiting on a neighbour, as a fraction of the step up to the
// optimizer update) against the bubble (P − 1)/(M + P − 1) for M = 1, 4, 16 under 1F1B; (2) training tokens/s of
// --pp 2 against the single-process trainer with the same global batch, measured in the same run; (3) per schedule
// (gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto): the measured idle on real workers (P = 2, kept
// tapes) beside the simulation of the same lists from that run's per-stage pass times, the simulator's prediction from
// the measured F, I, W of a middle stage's layers for P = 2, 4, 8 (M = 8), and the formula; (4) the cost-aware ZB-V
// at P = 4, M = 8 with the v-shape layout. F, I, W are measured as the runtime's
// split backward computes them, with kept tapes (I: dL/d(input), the weight gradients queued; W: the queue) and, for
// comparison, under full recompute (I records each layer's forward again); B is the full backward.
// Usage: node bench/pipeline.mjs [--pp 2] [--steps 4] [--layers 4] [--hidden 64] [--seq 64] [--batch 4] [--backend NAME]
// [--sim-only] (only (3)'s measured F, I, W and the simulations: no workers, quick at larger shapes) [--sim-layers 16]
// (the model of (4): the cost-aware ZB-V at P = 4, M = 8 from the measured per-layer times, embedding and head)
// --smoke: tiny shapes (4 layers, hidden 16, 1 × 16 tokens, 1 measured step, idle time for M = 2 only; 2 micro-batches
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
import {
  blockCosts,
  buildSchedule,
  formatBlocks,
  getSchedule,
  partitionLayers,
  simulateSchedule,
  simulateSteps,
  vShapePartition,
  vShapeStep,
} from '@yuan/plan';
import { initBackend, tf } from '@yuan/tensor';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    pp: { type: 'string', default: '2' },
    steps: { type: 'string', default: smoke ? '1' : '4' },
    layers: { type: 'string', default: '4' },
    hidden: { type: 'string', default: smoke ? '16' : '64' },
    seq: { type: 'string', default: smoke ? '16' : '64' },
    batch: { type: 'string', default: smoke ? '1' : '4' },
    backend: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'sim-only': { type: 'boolean', default: false },
    'sim-layers': { type: 'string', default: '16' },
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

/**
 * Runs one warm-up step and `steps` measured ones; returns tokens/s and the per-stage reports of the measured steps.
 * `postValidate`: the stages update before the global decision (no gradient clipping: the stable-training regime
 * post-validation is for; a clip that binds reruns the next step, which the reports count); `overlap` (with it):
 * each step is started before the previous one's decision (`trainStep({ another })`).
 */
async function measure(factory, m, { postValidate = false, overlap = false } = {}) {
  const engine = await factory(
    postValidate ? { ...setup(m), train: { ...setup(m).train, postValidate: true, gradClip: 0 } } : setup(m),
  );
  try {
    await engine.trainStep({ another: overlap });
    let tokens = 0;
    let seconds = 0;
    const reports = [];
    for (let i = 0; i < steps; i++) {
      const r = await engine.trainStep({ another: overlap && i < steps - 1 });
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
const simOnly = values['sim-only'];
const uniform = (stages) => partitionLayers('uniform', { layers: Number(values.layers), stages });
if (!simOnly) console.log(`\nidle time per stage (1f1b, --pp ${P}) against the bubble (P − 1)/(M + P − 1):`);
for (const m of simOnly ? [] : smoke ? [2] : [1, 4, 16]) {
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
if (!simOnly) {
  const base = await measure(singleProcessEngine, M);
  const pipe = await measure(
    pipelineEngine({
      stages: 2,
      microbatches: M,
      schedule: '1f1b',
      partition: uniform(2),
      plugins,
      threadsPerStage: 1,
    }),
    M,
  );
  console.log(
    `\ntokens/s, global batch ${M} micro-batches: single process ${base.tokensPerSecond.toFixed(0)}, --pp 2 ${pipe.tokensPerSecond.toFixed(0)}: ratio ${(pipe.tokensPerSecond / base.tokensPerSecond).toFixed(2)}x`,
  );
}

// (3) schedules: F, I, W of one stage's layers (L/2 of them, a middle stage: no embedding, no head), median of R, as
// the runtime computes them: with kept tapes (recompute none: F records each layer's tape, I backpropagates dL/d(input)
// with the weight gradients put off, W runs the queue) and under full recompute (I records each layer again from its
// kept input); B is the full backward
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
const sink = async (_g, grads) => {
  for (const g of grads.values()) {
    await g.data();
    g.dispose();
  }
};
/** F, B, I, W (ms, medians of R after a warm-up) of the range with `mode` kept between the forward and the backward. */
async function passTimes(mode) {
  const t = { F: [], B: [], I: [], W: [] };
  for (let k = 0; k <= R; k++) {
    let t0 = performance.now();
    let kept = range.forwardKeeping({}, x0, mode);
    await kept.result.data();
    const f = performance.now() - t0;
    t0 = performance.now();
    const r = await range.backwardInput({}, kept, x0, dy);
    await r.dx.data();
    const i = performance.now() - t0;
    t0 = performance.now();
    await range.backwardWeights(r.deferred, sink);
    const w = performance.now() - t0;
    r.dx.dispose();
    range.release(kept, x0);
    kept.result.dispose();
    kept = range.forwardKeeping({}, x0, mode);
    t0 = performance.now();
    const b = await range.backward({}, kept, dy, sink);
    await b.dx.data();
    const bt = performance.now() - t0;
    b.dx.dispose();
    range.release(kept, x0);
    kept.result.dispose();
    if (k > 0) [t.F, t.I, t.W, t.B].forEach((a, j) => a.push([f, i, w, bt][j]));
  }
  return { F: median(t.F), B: median(t.B), I: median(t.I), W: median(t.W) };
}
const full = await passTimes('full');
const keptT = await passTimes('none');
// the two ends, which the V puts on rank 0: the embedding (virtual stage 0) and the final norm, output projection and
// loss (virtual stage 2P − 1), F, I, W with kept tapes (medians of R after a warm-up), no layers of their own
const L0 = Number(values.layers);
const tokens = () => tf.randomUniform([Number(values.batch), Number(values.seq)], 0, 256, 'int32');
const ends = {
  ids: tokens(),
  targets: tokens(),
  mask: tf.ones([Number(values.batch), Number(values.seq)]),
};
async function endTimes(part, batch, input, up) {
  const r = LayerRange.init(config(1), lfaAttention, 0, part);
  const t = { F: [], I: [], W: [] };
  for (let k = 0; k <= R; k++) {
    let t0 = performance.now();
    const kept = r.forwardKeeping(batch, input, 'none');
    await kept.result.data();
    const f = performance.now() - t0;
    t0 = performance.now();
    const b = await r.backwardInput(batch, kept, input, up);
    if (b.dx) await b.dx.data();
    const i = performance.now() - t0;
    t0 = performance.now();
    await r.backwardWeights(b.deferred, sink);
    const w = performance.now() - t0;
    b.dx?.dispose();
    r.release(kept, input);
    kept.result.dispose();
    if (k > 0) [t.F, t.I, t.W].forEach((a, j) => a.push([f, i, w][j]));
  }
  return { forward: median(t.F), backwardInput: median(t.I), backwardWeight: median(t.W) };
}
const embedT = await endTimes(
  { embedding: true, head: false, firstLayer: 0, endLayer: 0 },
  { ids: ends.ids },
  undefined,
  dy,
);
const headT = await endTimes(
  { embedding: false, head: true, firstLayer: L0, endLayer: L0 },
  { targets: ends.targets, mask: ends.mask },
  x0,
  undefined,
);
tf.dispose(Object.values(ends));
x0.dispose();
dy.dispose();
const fmt = (t) =>
  `F ${t.F.toFixed(2)} ms, B ${t.B.toFixed(2)} ms, I ${t.I.toFixed(2)} ms, W ${t.W.toFixed(2)} ms (I/F ${(t.I / t.F).toFixed(2)}, W/F ${(t.W / t.F).toFixed(2)}, (I+W)/(B+F) ${((t.I + t.W) / (t.B + t.F)).toFixed(2)})`;
console.log(`\nschedules: a stage of ${half} layer(s), median of ${R}:`);
console.log(`  kept tapes (recompute none): ${fmt(keptT)}`);
console.log(`  recompute full:              ${fmt(full)}`);
const { F: Fms, B: Bms, I: Ims, W: Wms } = keptT;
const SCHEDULES = ['gpipe', '1f1b', 'interleaved-1f1b', 'zb-h1', 'zb-h2', 'zb-v', 'zb-v-auto'];
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
formula['zb-v-auto'] = formula['zb-v']; // never slower than zb-v: the same closed form bounds it
const costs = { forward: Fms, backwardInput: Ims, backwardWeight: Wms };
/** The simulated idle share (the busiest-idling rank) of `name` over P ranks from the middle stage's measured times. */
const predict = (name, P) => {
  const chunks = getSchedule(name).chunks ?? 1;
  const lists = Array.from({ length: P }, (_, s) =>
    buildSchedule(name, { stages: P, microbatches: MS, stage: s, costs }),
  );
  const c = {
    forwardCost: Fms / chunks,
    backwardInputCost: Ims / chunks,
    backwardWeightCost: Wms / chunks,
    backwardCost: Bms / chunks,
  };
  return {
    one: Math.max(...simulateSchedule(lists, c).idleFraction),
    steady: Math.max(...simulateSteps(lists, c).idleFraction),
  };
};
/**
 * The simulated idle share of the lists the runtime ran, from that run's own per-stage pass times (each virtual
 * stage's mean F, B, I, W per micro-batch over the measured steps: the embedding and the head included, which the
 * middle-stage prediction leaves out).
 */
const predictFromRun = (name, reports, overlap = false) => {
  const lists = Array.from({ length: 2 }, (_, s) => buildSchedule(name, { stages: 2, microbatches: MS, stage: s }));
  const rows = new Map();
  for (const step of reports)
    for (const rep of step)
      for (const row of rep.passMs) {
        const a = rows.get(row.stage) ?? { forward: 0, backward: 0, backwardInput: 0, backwardWeight: 0, count: 0 };
        for (const k of Object.keys(a)) a[k] += row[k];
        rows.set(row.stage, a);
      }
  const V = rows.size;
  const per = (k) => Array.from({ length: V }, (_, v) => rows.get(v)[k] / rows.get(v).count);
  const c = {
    forwardCost: per('forward'),
    backwardCost: per('backward'),
    backwardInputCost: per('backwardInput'),
    backwardWeightCost: per('backwardWeight'),
  };
  const r = overlap ? simulateSteps(lists, c) : simulateSchedule(lists, c);
  return {
    idle: Math.max(...r.idleFraction),
    perStage: per('forward').map((f, v) => f + per('backward')[v] + per('backwardInput')[v] + per('backwardWeight')[v]),
  };
};
console.log(
  `idle share of a step per schedule, M = ${MS} (predicted: simulated from the kept-tape F, I, W of a middle stage; B for unsplit schedules; "overlapped": steps run back to back under post-validation, no synchronisation between them, the idle share of the repeating period). measured P=2: real workers (recompute none), against the simulation of the same lists from that run's own per-stage pass times:`,
);
/** The measured idle share of the busiest-idling stage at P = 2 over `reports`, against the simulation of the run. */
const measuredIdle = (name, reports, overlap) => {
  const idle = [0, 1].map(
    (st) => reports.reduce((a, r) => a + r[st].waitMs, 0) / reports.reduce((a, r) => a + r[st].stepMs, 0),
  );
  const m = Math.max(...idle);
  const fromRun = predictFromRun(name, reports, overlap);
  const off = Math.abs(m - fromRun.idle);
  const extra = overlap
    ? `; steps that started before the previous decision ${reports.filter((r) => r.some((x) => x.overlapped)).length}/${reports.length}, reruns ${reports.reduce((a, r) => a + Math.max(...r.map((x) => x.restarts)), 0)}`
    : '';
  return `${(100 * m).toFixed(1)}% (simulated from this run ${(100 * fromRun.idle).toFixed(1)}%, off by ${(100 * off).toFixed(1)} points${off <= 0.1 ? '' : ', outside ±10'}; per-stage compute per micro-batch ${fromRun.perStage.map((x) => x.toFixed(1)).join('/')} ms${extra})`;
};
const rows = [];
for (const name of SCHEDULES) {
  let measured = 'not run (--sim-only)';
  const V = 2 * (getSchedule(name).chunks ?? 1);
  const engine = () =>
    pipelineEngine({ stages: 2, microbatches: MS, schedule: name, partition: uniform(V), plugins, recompute: 'none' });
  if (!simOnly) measured = measuredIdle(name, (await measure(engine(), MS)).reports, false);
  const [f, b, i, w] = [Fms, Bms, Ims, Wms];
  const pr = [2, 4, 8].map((P) => predict(name, P));
  const pred = pr.map((x, k) => `P=${[2, 4, 8][k]} ${(100 * x.one).toFixed(1)}%`).join(', ');
  const steady = pr.map((x) => `${(100 * x.steady).toFixed(1)}%`).join('/');
  const form = [2, 4, 8].map((P) => `${(100 * formula[name](P, MS, f, b, i, w)).toFixed(1)}%`).join('/');
  rows.push({ name, p4: pr[1].one, p4steady: pr[1].steady });
  console.log(
    `  ${name.padEnd(17)} predicted ${pred}; overlapped ${steady}; formula ${form}; measured P=2: ${measured}`,
  );
  // the V schedules' start-up fills the previous step's drain once steps overlap: measure that too, and the wall
  // time against the same post-validated engine run one step at a time (the measured idle of a step alone leaves out
  // the wait between steps, the overlapped one counts every wait, so the tokens/s ratio is the fair comparison)
  if (!simOnly && name.startsWith('zb-v')) {
    const alone = await measure(engine(), MS, { postValidate: true });
    const over = await measure(engine(), MS, { postValidate: true, overlap: true });
    console.log(
      `  ${''.padEnd(17)} overlapped steps (post-validation), measured P=2: ${measuredIdle(name, over.reports, true)}; tokens/s ${over.tokensPerSecond.toFixed(0)} against ${alone.tokensPerSecond.toFixed(0)} one step at a time: ${(over.tokensPerSecond / alone.tokensPerSecond).toFixed(2)}x`,
    );
  }
}
const p4 = Object.fromEntries(rows.map((r) => [r.name, r.p4]));
const p4steady = Object.fromEntries(rows.map((r) => [r.name, r.p4steady]));
// no schedule beats the wait of the rank that starts last: P − 1 chunk forwards before its first input (half a stage's
// F each with two chunks), against M (F + I + W) of work per rank
const floor = (3 * Fms) / 2 / ((3 * Fms) / 2 + MS * (Fms + Ims + Wms));
console.log(
  `lower bound of any two-chunk schedule's idle at P = 4, M = ${MS} from these times (the last rank waits 3 chunk forwards): ${(100 * floor).toFixed(1)}%`,
);
console.log(
  `target (P = 4, M = ${MS}, simulated from measured times with kept activations): zb-v ${(100 * p4['zb-v']).toFixed(1)}% idle for one step alone, ${(100 * p4steady['zb-v']).toFixed(1)}% with steps overlapped under post-validation (target ≤ 5%), against 1f1b's ${(100 * p4['1f1b']).toFixed(1)}% (${(100 * p4steady['1f1b']).toFixed(1)}% overlapped): ratio ${(p4steady['zb-v'] / p4['1f1b']).toFixed(2)}`,
);

// (4) the cost-aware ZB-V (zb-v-auto) at P = 4, M = 8 on a model of --sim-layers layers (default 16: 2 per virtual
// stage when uniform) from the measured per-layer F, I, W (the middle stage's over its layers) and the measured
// embedding and head + loss on rank 0's two chunks, with the layout the v-shape partitioner chooses, beside the uniform V and 1F1B. Idle = the step's bubble 1 − work / (P × makespan) (with
// unequal work per rank the lightest rank's own idle is larger by design; the max over ranks is printed too); held =
// the peak micro-batches in flight in units of an average rank's (1F1B's stage 0 holds P = 4)
const SL = Number(values['sim-layers']);
const layer = { forward: Fms / half, backwardInput: Ims / half, backwardWeight: Wms / half };
const vIn = { layers: SL, ranks: 4, microbatches: MS, layerCosts: layer, firstCosts: embedT, lastCosts: headT };
const show = (label, r, steady) => {
  const work = r.busy.reduce((a, b) => a + b, 0);
  const bubble = 1 - work / (r.busy.length * r.makespan);
  const over = steady
    ? `; overlapped steps: idle ${(100 * steady.bubble).toFixed(1)}%, period ${steady.period.toFixed(0)} ms`
    : '';
  console.log(
    `  ${label.padEnd(44)} idle ${(100 * bubble).toFixed(1)}% (max over ranks ${(100 * Math.max(...r.idleFraction)).toFixed(1)}%), step ${r.makespan.toFixed(0)} ms, held ${Math.max(...r.maxInFlight).toFixed(2)}${over}`,
  );
  return steady ? { bubble, steady: steady.bubble } : bubble;
};
/** `vShapeStep`'s result as `show` takes it. */
const showV = (label, v) => show(label, v.sim, v.steady);
console.log(
  `\ncost-aware ZB-V, P = 4, M = ${MS}, ${SL} layers of F ${layer.forward.toFixed(1)}, I ${layer.backwardInput.toFixed(1)}, W ${layer.backwardWeight.toFixed(1)} ms per layer; embedding F ${embedT.forward.toFixed(1)}, I ${embedT.backwardInput.toFixed(1)}, W ${embedT.backwardWeight.toFixed(1)} ms on virtual stage 0, head and loss F ${headT.forward.toFixed(1)}, I ${headT.backwardInput.toFixed(1)}, W ${headT.backwardWeight.toFixed(1)} ms on 7):`,
);
const endF = (st, k) => (st === 0 ? embedT[k] : 0) + (st === 3 ? headT[k] : 0);
const oneF = simulateSchedule(
  Array.from({ length: 4 }, (_, st) => buildSchedule('1f1b', { stages: 4, microbatches: MS, stage: st })),
  {
    forwardCost: [0, 1, 2, 3].map((st) => (layer.forward * SL) / 4 + endF(st, 'forward')),
    backwardCost: [0, 1, 2, 3].map(
      (st) => ((Bms / half) * SL) / 4 + endF(st, 'backwardInput') + endF(st, 'backwardWeight'),
    ),
  },
);
const b1 = show('1f1b, uniform', oneF);
const uniformV = partitionLayers('uniform', { layers: SL, stages: 8 });
const handLists = Array.from({ length: 4 }, (_, s) => buildSchedule('zb-v', { stages: 4, microbatches: MS, stage: s }));
const uc = blockCosts(vIn, uniformV);
const ucCosts = {
  forwardCost: uc.map((c) => c.forward),
  backwardInputCost: uc.map((c) => c.backwardInput),
  backwardWeightCost: uc.map((c) => c.backwardWeight),
};
const handOne = simulateSchedule(handLists, ucCosts);
const handSteady = simulateSteps(handLists, ucCosts);
const bv = show(`zb-v, uniform ${formatBlocks(uniformV)}`, handOne, {
  period: handSteady.period,
  bubble: 1 - handOne.busy.reduce((a, b) => a + b, 0) / (4 * handSteady.period),
});
showV(`zb-v-auto, uniform ${formatBlocks(uniformV)}`, vShapeStep(vIn, uniformV));
const t0 = performance.now();
const chosen = vShapePartition(vIn);
const ba = showV(`zb-v-auto, v-shape ${chosen.join(',')}`, vShapeStep(vIn, chosen));
const searchMs = performance.now() - t0;
// more memory than 1F1B's peak lets the ranks that turn the V hold the micro-batches that cover the way back
const more = [1.25, 1.5].map((memory) => {
  const input = { ...vIn, memory };
  const blocks = vShapePartition(input);
  return {
    memory,
    idle: showV(`zb-v-auto, v-shape ${blocks.join(',')}, ${memory}x memory`, vShapeStep(input, blocks)).bubble,
  };
});
// bounds: rank 3 starts after the chunk-0 forwards of ranks 0..2 (c0 layers in all) and, holding P micro-batches,
// waits again unless its own P − 1 forwards cover a micro-batch's way back (its chunk-1 successors' F and I)
const perRank = (SL / 4) * MS * (layer.forward + layer.backwardInput + layer.backwardWeight);
const ownF = (SL / 4) * layer.forward;
const bound = (c0) => {
  const back = (3 * (SL / 4) - c0) * (layer.forward + layer.backwardInput);
  const wait = c0 * layer.forward + Math.max(0, back + ownF - 4 * ownF);
  return wait / (wait + perRank);
};
let best = { c0: 0, b: 1 };
for (let c0 = 3; c0 <= (3 * SL) / 4 - 3; c0++) if (bound(c0) < best.b) best = { c0, b: bound(c0) };
console.log(
  `  bound at 1F1B's memory, equal work per rank: ${(100 * best.b).toFixed(1)}% (${best.c0} layers in the chunk-0 stages of ranks 0..2; uniform ${(100 * bound((3 * SL) / 8)).toFixed(1)}%); v-shape search ${searchMs.toFixed(0)} ms`,
);
console.log(
  `target (P = 4, M = ${MS}): zb-v-auto ${(100 * ba.bubble).toFixed(1)}% idle at 1F1B's memory for one step alone, ${(100 * ba.steady).toFixed(1)}% with steps overlapped under post-validation (target ≤ 5%; zb-v ${(100 * bv.bubble).toFixed(1)}% / ${(100 * bv.steady).toFixed(1)}% overlapped, 1f1b ${(100 * b1).toFixed(1)}%: ratio ${(ba.steady / b1).toFixed(2)}); one step alone ${more.map((x) => `${(100 * x.idle).toFixed(1)}% with ${x.memory}x`).join(', ')} its memory`,
);
rmSync(tmp, { recursive: true, force: true });
