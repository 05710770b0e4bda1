import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig, type YuanConfig } from '@yuan/core';
import { evalBatches, PackedSplit, PackWriter, positionResetId, readPackedIndex } from '@yuan/data';
import {
  AdapterModule,
  listCheckpoints,
  loraAdapter,
  mhaAttention,
  modelParameters,
  randomInferenceWeights,
  YuanModel,
} from '@yuan/model';
import { initBackend, int8Format, openSafetensors, type TensorAttentionPlugin } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adapterEngine,
  adapterWeightFiles,
  batchLoss,
  runTraining,
  trainConfig,
  type AdapterTraining,
} from '../src/index.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-lora-train-'));
const lookup = (name: string) => (name === 'lfa' ? lfaAttention : mhaAttention) as never;
const lfa = lfaAttention as unknown as TensorAttentionPlugin<unknown>;
const special = { eod: 256, sep: 257, pad: 258 };
const corpus = Array.from(
  { length: 24 },
  (_, i) => `Document ${i}: the quick brown fox jumps over the lazy dog ${i * 7} times.`,
);
let data: string;

function tinyConfig(adapter: Record<string, unknown>): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 264, hiddenSize: 32, numLayers: 2, numHeads: 2, ffnSize: 64, maxPositions: 64 },
    attention: { name: 'lfa', options: {} },
    train: {
      seqLength: 16,
      microBatchSize: 2,
      gradAccumulation: 2,
      warmupSteps: 1,
      decaySteps: 4,
      lr: 2e-2,
      checkpointEvery: 2,
      validEvery: 0,
    },
    adapter: { name: 'lora', options: adapter },
  });
}

/** The frozen base: a seeded model's weights, read fresh for each run. */
const base = async (config: YuanConfig) => {
  const m = YuanModel.init(config, lfa, 77);
  const w = await m.weights();
  m.dispose();
  return w;
};

function training(config: YuanConfig, recompute: AdapterTraining['recompute'] = false): AdapterTraining {
  return {
    plugin: loraAdapter as never,
    options: config.adapter!.options!,
    base: () => base(config),
    baseDir: '/models/base',
    recompute,
  };
}

async function run(
  config: YuanConfig,
  out: string,
  steps: number,
  resume?: string,
  recompute: AdapterTraining['recompute'] = false,
  packed = false,
) {
  const t = packed
    ? {
        ...training(config, recompute),
        base: undefined,
        storedBase: async () => randomInferenceWeights(config, lfa, 77, { format: int8Format }),
      }
    : training(config, recompute);
  return runTraining({
    config,
    lookup,
    data,
    steps,
    out,
    seed: 3,
    engine: adapterEngine(t),
    weightFiles: adapterWeightFiles(t, config, lfa),
    resume,
  });
}

beforeAll(async () => {
  await initBackend('cpu');
  const w = await PackWriter.create(path.join(tmp, 'data'), {
    tokenizer: { name: 'bytes' },
    vocabSize: 264,
    special,
    validFraction: 0.25,
  });
  for (const d of corpus) await w.addDocument([...Buffer.from(d, 'utf8')]);
  await w.finish();
  data = path.join(tmp, 'data');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('training a LoRA adapter over a frozen base', () => {
  const options = { rank: 4, alpha: 8, dropout: 0.1, targets: 'all-linear' };

  it('trains only the adapter: checkpoints hold PEFT files and moments of A and B only, the base is unchanged', async () => {
    const config = tinyConfig(options);
    const out = path.join(tmp, 'run');
    const r = await run(config, out, 4);
    const adapterParams = loraAdapter.parameters(
      modelParameters(config, lfa),
      loraAdapter.validate!({ ...loraAdapter.defaults, ...options }),
    );
    expect(r.parameters).toBe(adapterParams.reduce((a, s) => a + s.shape[0] * s.shape[1], 0));
    const last = listCheckpoints(out).pop()!;
    expect(readdirSync(last).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'manifest.json',
      'optimizer.safetensors',
      'trainer.json',
    ]);
    const opt = await openSafetensors(path.join(last, 'optimizer.safetensors'));
    expect([...opt.entries.keys()].sort()).toEqual(adapterParams.flatMap((s) => [`m.${s.name}`, `v.${s.name}`]).sort());
    await opt.close();
    // the trained adapter on the untouched base gives the run's final validation loss: the base did not move
    const model = YuanModel.fromWeights(config, lfa, await base(config));
    const files = adapterWeightFiles(training(config), config, lfa);
    const adapter = AdapterModule.fromWeights(
      loraAdapter as never,
      options,
      modelParameters(config, lfa),
      await files.read(last),
    );
    model.attachAdapter(adapter);
    const tc = trainConfig(config);
    const index = readPackedIndex(data);
    const split = PackedSplit.open(data, index, 'valid');
    const batches = evalBatches(
      split,
      tc.seqLength,
      tc.microBatchSize,
      tc.validBatches,
      positionResetId(index, tc, data),
    );
    split.close();
    let sum = 0;
    for (const b of batches) {
      const l = batchLoss(model, b, true);
      sum += l.dataSync()[0];
      l.dispose();
    }
    expect(Math.abs(sum / batches.length - r.validLoss)).toBeLessThan(1e-5);
    // and it is not the base's own loss (B moved away from zero)
    const plain = YuanModel.fromWeights(config, lfa, await base(config));
    const l = batchLoss(plain, batches[0], true);
    const l2 = batchLoss(model, batches[0], true);
    expect(Math.abs(l.dataSync()[0] - l2.dataSync()[0])).toBeGreaterThan(1e-3);
    l.dispose();
    l2.dispose();
    model.dispose();
    plain.dispose();
  });

  it('a resumed run (dropout on) gives the losses of an uninterrupted one, and refuses another rank', async () => {
    const config = tinyConfig(options);
    const whole = await run(config, path.join(tmp, 'whole'), 4);
    const half = path.join(tmp, 'half');
    await run(config, half, 2);
    const rest = await run(config, half, 4, half);
    expect(rest.history.map((m) => m.step)).toEqual([3, 4]);
    for (const [i, m] of rest.history.entries()) expect(m.loss).toBeCloseTo(whole.history[i + 2].loss, 5);
    expect(rest.validLoss).toBeCloseTo(whole.validLoss, 5);
    // without dropout the losses differ from the run with it (the masks were applied)
    const noDropout = await run(tinyConfig({ ...options, dropout: 0 }), path.join(tmp, 'plain'), 2);
    expect(Math.abs(noDropout.history[1].loss - whole.history[1].loss)).toBeGreaterThan(1e-6);
    // recomputing each layer in the backward (the masks redrawn alike) gives the same losses; resumed, too
    const recomputed = await run(config, path.join(tmp, 'recomputed'), 4, undefined, true);
    for (const [i, m] of recomputed.history.entries())
      expect(m.loss, `step ${i + 1}`).toBeCloseTo(whole.history[i].loss, 5);
    expect(recomputed.validLoss).toBeCloseTo(whole.validLoss, 5);
    // each layer recorded once on a kept tape (pruned of what the adapter's gradients never read): the same losses
    const taped = await run(config, path.join(tmp, 'taped'), 4, undefined, 'none');
    for (const [i, m] of taped.history.entries()) expect(m.loss, `step ${i + 1}`).toBeCloseTo(whole.history[i].loss, 5);
    const mixed = await run(config, half, 4, path.join(half, 'checkpoint-00000002'), true);
    for (const [i, m] of mixed.history.entries()) expect(m.loss).toBeCloseTo(whole.history[i + 2].loss, 5);
    const other = tinyConfig({ ...options, rank: 2 });
    await expect(run(other, path.join(tmp, 'other'), 4, half)).rejects.toThrow(
      /holds another model \(.*adapter lora \{"rank":4,.*\) than this run's config \(.*adapter lora \{"rank":2,/,
    );
  });

  it('over a packed int8 base (QLoRA-style), recomputing each layer or keeping pruned layer tapes gives the losses of one whole tape', async () => {
    const config = tinyConfig({ ...options, dropout: 0 });
    const kept = await run(config, path.join(tmp, 'packed-kept'), 3, undefined, false, true);
    const recomputed = await run(config, path.join(tmp, 'packed-recomputed'), 3, undefined, true, true);
    expect(recomputed.history).toHaveLength(3);
    for (const [i, m] of recomputed.history.entries())
      expect(m.loss, `step ${i + 1}`).toBeCloseTo(kept.history[i].loss, 5);
    expect(recomputed.validLoss).toBeCloseTo(kept.validLoss, 5);
    const taped = await run(config, path.join(tmp, 'packed-taped'), 3, undefined, 'none', true);
    for (const [i, m] of taped.history.entries()) expect(m.loss, `step ${i + 1}`).toBeCloseTo(kept.history[i].loss, 5);
    // the adapter learns: the base differs from the float32 one the other tests use, so compare within this pair
    expect(kept.history[2].loss).not.toBe(kept.history[0].loss);
  });
});
