// Every schedule trains with the single-process trainer's losses and weights: split backwards (I now, W later) and
// virtual stages (interleaved 1F1B, ZB-V: two model chunks per rank) over non-uniform partitions, on worker threads
// and over tcp, with kept tapes and with full/stage recompute.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PluginRegistry, registerPluginModules, type JsonObject } from '@yuan/core';
import { formatActionLists, getSchedule } from '@yuan/plan';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineEngine, trainParallel, type PipelineOptions } from '../src/index.js';
import { LFA_MODULE, maxWeightDiff, packedData, relDiff, run, setupOf, single, tinyConfig, tmp } from './helpers.js';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let data: string;
let registry: PluginRegistry;
beforeAll(async () => {
  await initBackend('cpu');
  data = await packedData();
  registry = new PluginRegistry();
  await registerPluginModules(
    registry,
    ['@yuan/model', '@yuan/attention-lfa', '@yuan/plan', '@yuan/comm', '@yuan/tensor'],
    pkg,
  );
  registry.freeze();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STEPS = 3;
const LAYERS = 6;

/** Per-layer F, I, W under which zb-v-auto orders the V [1, 2, 1, 2] at P = 2, M = 4 differently from zb-v. */
const ZBV_AUTO_COSTS = { forward: 1, backwardInput: 1.2, backwardWeight: 0.8 };

// P = 2, M = 4; partitions over the virtual stages (4 of them under interleaved 1F1B and ZB-V) are uneven
const cases: {
  schedule: string;
  recompute: PipelineOptions['recompute'];
  partition: number[];
  layerCosts?: PipelineOptions['layerCosts'];
}[] = [
  { schedule: 'gpipe', recompute: 'none', partition: [2, 4] },
  { schedule: '1f1b', recompute: 'selective', partition: [4, 2] },
  { schedule: 'zb-h1', recompute: 'none', partition: [2, 4] },
  { schedule: 'zb-h1', recompute: 'full', partition: [4, 2] },
  { schedule: 'zb-h2', recompute: 'stage', partition: [1, 5] },
  { schedule: 'interleaved-1f1b', recompute: 'none', partition: [1, 2, 1, 2] },
  { schedule: 'interleaved-1f1b', recompute: 'full', partition: [2, 1, 2, 1] },
  { schedule: 'zb-v', recompute: 'none', partition: [2, 1, 1, 2] },
  { schedule: 'zb-v', recompute: 'full', partition: [1, 2, 2, 1] },
  { schedule: 'zb-v', recompute: 'stage', partition: [1, 1, 3, 1] },
  // the cost-aware ZB-V's own order on uneven chunks (its lists differ from zb-v's, checked below)
  { schedule: 'zb-v-auto', recompute: 'none', partition: [1, 2, 1, 2], layerCosts: ZBV_AUTO_COSTS },
  { schedule: 'zb-v-auto', recompute: 'full', partition: [1, 2, 1, 2], layerCosts: ZBV_AUTO_COSTS },
];

describe('schedules on the pipeline runtime: the single-process losses and weights', () => {
  it('zb-v-auto on 1,2,1,2 with its layer costs is a new list shape (not zb-v)', () => {
    const stageCosts = [1, 2, 1, 2].map((n) => ({
      forward: n * ZBV_AUTO_COSTS.forward,
      backwardInput: n * ZBV_AUTO_COSTS.backwardInput,
      backwardWeight: n * ZBV_AUTO_COSTS.backwardWeight,
    }));
    const auto = getSchedule('zb-v-auto').actions!({ stages: 2, microbatches: 4, stageCosts });
    const hand = getSchedule('zb-v').actions!({ stages: 2, microbatches: 4 });
    expect(formatActionLists(auto.ranks)).not.toBe(formatActionLists(hand.ranks));
  });

  // the single-process trainer's run, once for every case (the same model, data and M = 4)
  let reference: ReturnType<typeof run> | undefined;
  for (const c of cases) {
    it(`${c.schedule}, recompute ${c.recompute}, partition ${c.partition.join(',')} (threads)`, async () => {
      const config = tinyConfig('lfa', LAYERS);
      reference ??= run(single, setupOf(config, data, STEPS, undefined, 4), STEPS);
      const ref = await reference;
      const pipe = await run(
        pipelineEngine({ stages: 2, microbatches: 4, plugins: [LFA_MODULE], ...c }),
        setupOf(config, data, STEPS),
        STEPS,
      );
      expect(relDiff(pipe.losses, ref.losses)).toBeLessThan(1e-4);
      expect(maxWeightDiff(pipe.contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
      expect(maxWeightDiff(pipe.contents.optimizer.moments, ref.contents.optimizer.moments)).toBeLessThan(1e-4);
      // no forward twice with kept tapes, whatever the schedule; the split backward redoes each layer once under full
      const forwards = 4 * LAYERS;
      if (c.recompute === 'none' || c.recompute === 'selective')
        expect(pipe.layerForwards).toEqual([forwards, forwards, forwards]);
      if (c.recompute === 'full') expect(pipe.layerForwards).toEqual([2 * forwards, 2 * forwards, 2 * forwards]);
    });
  }

  /** A P = 2 ZB-V pipeline (uneven V 2,1,1,2, kept tapes) with `train.postValidate` and `train` over tinyConfig's. */
  const postValidatedZbv = (train: Record<string, unknown>) =>
    pipelineEngine({
      stages: 2,
      microbatches: 4,
      plugins: [LFA_MODULE],
      schedule: 'zb-v',
      recompute: 'none',
      partition: [2, 1, 1, 2],
    })(setupOf(tinyConfig('lfa', LAYERS, { postValidate: true, ...train }), data, STEPS));

  it('post-validation in the stages (zb-v): update first, roll back and redo clipped over the clip — the clip-first weights', async () => {
    const config = tinyConfig('lfa', LAYERS);
    reference ??= run(single, setupOf(config, data, STEPS, undefined, 4), STEPS);
    const ref = await reference;
    const engine = await postValidatedZbv({});
    try {
      const norms: number[] = [];
      const losses: number[] = [];
      for (let i = 0; i < STEPS; i++) {
        const m = await engine.trainStep();
        norms.push(m.gradNorm);
        losses.push(m.loss);
      }
      // the clip (0.5) binds: those steps were rolled back and redone clipped
      expect(norms.some((n) => n > 0.5)).toBe(true);
      expect(relDiff(losses, ref.losses)).toBeLessThan(1e-4);
      const contents = await engine.checkpoint();
      expect(maxWeightDiff(contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
      expect(maxWeightDiff(contents.optimizer.moments, ref.contents.optimizer.moments)).toBeLessThan(1e-4);
    } finally {
      await engine.dispose();
    }
  });

  // post-validation overlaps steps: each stage starts step n + 1 after its own speculative update of step n, and a
  // decision that rolls that update back reruns step n + 1 (a new try, its own message tags) with the settled weights
  it.each([
    { clip: 0.5, rerun: true },
    { clip: 1e6, rerun: false },
  ])(
    'overlapped steps under post-validation (zb-v, clip $clip): the single-process losses and weights',
    async ({ clip, rerun }) => {
      const ref = await run(
        single,
        setupOf(tinyConfig('lfa', LAYERS, { gradClip: clip }), data, STEPS, undefined, 4),
        STEPS,
      );
      const engine = await postValidatedZbv({ gradClip: clip });
      try {
        const losses: number[] = [];
        const restarts: number[] = [];
        for (let i = 0; i < STEPS; i++) {
          const m = await engine.trainStep({ another: i < STEPS - 1 });
          losses.push(m.loss);
          restarts.push(Math.max(...engine.stageReports.map((r) => r.restarts)));
        }
        expect(relDiff(losses, ref.losses)).toBeLessThan(1e-4);
        // the clip of 0.5 binds in these steps (rolled back, so the next step reran); a clip of 1e6 never does
        expect(restarts.slice(1).some((r) => r > 0)).toBe(rerun);
        expect(restarts[0]).toBe(0);
        const contents = await engine.checkpoint();
        expect(maxWeightDiff(contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
        expect(maxWeightDiff(contents.optimizer.moments, ref.contents.optimizer.moments)).toBeLessThan(1e-4);
      } finally {
        await engine.dispose();
      }
    },
  );

  const tcpRun = (parallel: JsonObject, out: string, train: Record<string, unknown> = {}) =>
    trainParallel({
      config: { ...tinyConfig('lfa', LAYERS, train), parallel },
      registry,
      data,
      steps: STEPS,
      out: path.join(tmp, out),
      seed: 3,
      backend: 'cpu',
      env: {},
    });

  it('zb-v (partition 2,1,2,1) and interleaved 1F1B with data parallelism (ZeRO 2) over tcp ranks', async () => {
    const one = await tcpRun({ microbatches: 4 }, 'tcp-single');
    const losses = one.history.map((m) => m.loss);
    const zbv = await tcpRun(
      { pp: 2, microbatches: 4, schedule: 'zb-v', partition: '2,1,2,1', transport: 'tcp' },
      'tcp-zbv',
    );
    expect(zbv.worldSize).toBe(2);
    expect(
      relDiff(
        zbv.history.map((m) => m.loss),
        losses,
      ),
    ).toBeLessThan(1e-4);
    // post-validation over tcp ranks: steps overlap (a clip that binds reruns the next step), the same losses
    const post = await tcpRun(
      { pp: 2, microbatches: 4, schedule: 'zb-v', partition: '2,1,2,1', transport: 'tcp' },
      'tcp-zbv-post',
      { postValidate: true },
    );
    expect(
      relDiff(
        post.history.map((m) => m.loss),
        losses,
      ),
    ).toBeLessThan(1e-4);
    const inter = await tcpRun(
      { pp: 2, dp: 2, zero: 2, microbatches: 4, schedule: 'interleaved-1f1b', partition: '1,2,2,1', transport: 'tcp' },
      'tcp-interleaved',
    );
    expect(inter.worldSize).toBe(4);
    expect(
      relDiff(
        inter.history.map((m) => m.loss),
        losses,
      ),
    ).toBeLessThan(1e-4);
  });
});
