import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig, type YuanConfig } from '@yuan/core';
import { initBackend, liveTensorCount, openSafetensors, tf } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  learningRate,
  loadTrainCheckpoint,
  resolveResumeDir,
  saveTrainCheckpoint,
  trainConfig,
  Trainer,
} from '../src/index.js';
import { listCheckpoints, mhaAttention, modelParameters, YuanModel } from '@yuan/model';
import { BatchLoader, PackedSplit, PackWriter, positionResetId, readPackedIndex } from '@yuan/data';
// the model package's test helper: the built-in attention plugins in a registry
import { attentionNamed } from '../../model/test/attention.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-train-'));
const lookup = attentionNamed;
const special = { eod: 256, sep: 257, pad: 258 };
const bytes = (s: string) => [...Buffer.from(s, 'utf8')];

function tinyConfig(attention = 'mha', train: Record<string, unknown> = {}): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 264, hiddenSize: 32, numLayers: 2, numHeads: 2, ffnSize: 64, maxPositions: 64 },
    attention: { name: attention, options: {} },
    train: { seqLength: 16, microBatchSize: 2, warmupSteps: 2, lr: 3e-3, checkpointEvery: 0, ...train },
  });
}

async function packText(dir: string, docs: string[], validFraction = 0.25): Promise<string> {
  const w = await PackWriter.create(dir, { tokenizer: { name: 'bytes' }, vocabSize: 264, special, validFraction });
  for (const d of docs) await w.addDocument(bytes(d));
  await w.finish();
  return dir;
}

const corpus = Array.from(
  { length: 24 },
  (_, i) => `Document ${i}: the quick brown fox jumps over the lazy dog ${i * 7} times.`,
);
let dataDir: string;

function makeTrainer(config: YuanConfig, model: YuanModel, steps: number, seed = 1): Trainer {
  const tc = trainConfig(config);
  const index = readPackedIndex(dataDir);
  const split = PackedSplit.open(dataDir, index, 'train');
  return new Trainer(
    model,
    tc,
    steps,
    new BatchLoader(split, tc.seqLength, tc.microBatchSize, seed, positionResetId(index, tc, dataDir)),
  );
}

async function losses(trainer: Trainer, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await trainer.trainStep()).loss);
  return out;
}

beforeAll(async () => {
  await initBackend('cpu');
  dataDir = await packText(path.join(tmp, 'data'), corpus);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('schedule and optimizer', () => {
  it('warms up linearly, decays by cosine to the floor and stays there', () => {
    const s = { lr: 1, minLr: 0.1, warmupSteps: 10, decaySteps: 110 };
    expect(learningRate(5, s)).toBeCloseTo(0.5, 12);
    expect(learningRate(10, s)).toBeCloseTo(1, 12);
    expect(learningRate(60, s)).toBeCloseTo(0.55, 12);
    expect(learningRate(110, s)).toBe(0.1);
    expect(learningRate(500, s)).toBe(0.1);
  });

  it('AdamW matches a scalar reference, decaying 2-D parameters only', () => {
    const opts = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const params = new Map([
      ['w', tf.variable(tf.tensor2d([[0.5, -1]]))],
      ['b', tf.variable(tf.tensor1d([0.5]))],
    ]);
    const opt = new AdamW(opts);
    const ref = { w: [0.5, -1], b: [0.5] } as Record<string, number[]>;
    const m: Record<string, number[]> = { w: [0, 0], b: [0] };
    const v: Record<string, number[]> = { w: [0, 0], b: [0] };
    const gs = [
      { w: [0.2, -0.4], b: [1] },
      { w: [-0.1, 0.3], b: [2] },
    ] as Record<string, number[]>[];
    gs.forEach((g, t) => {
      const grads = new Map([
        ['w', tf.tensor2d([g.w])],
        ['b', tf.tensor1d(g.b)],
      ]);
      opt.update(params, grads, 0.01);
      grads.forEach((x) => x.dispose());
      for (const k of ['w', 'b']) {
        const wd = k === 'w' ? 0.1 : 0;
        ref[k] = ref[k].map((p, i) => {
          m[k][i] = 0.9 * m[k][i] + 0.1 * g[k][i];
          v[k][i] = 0.95 * v[k][i] + 0.05 * g[k][i] ** 2;
          const u = m[k][i] / (1 - 0.9 ** (t + 1)) / (Math.sqrt(v[k][i] / (1 - 0.95 ** (t + 1))) + 1e-8);
          return p - 0.01 * (u + wd * p);
        });
      }
    });
    expect([...params.get('w')!.dataSync()].map((x, i) => x - ref.w[i]).every((d) => Math.abs(d) < 1e-6)).toBe(true);
    expect(params.get('b')!.dataSync()[0]).toBeCloseTo(ref.b[0], 6);
    opt.dispose();
    params.forEach((p) => p.dispose());
  });
});

describe('packed data', () => {
  it('packs documents with <eod>, splits train/valid and masks SFT prompts', async () => {
    const dir = path.join(tmp, 'sft');
    const w = await PackWriter.create(dir, { tokenizer: { name: 'bytes' }, vocabSize: 264, special, validFraction: 0 });
    await w.addDocument(bytes('ab'));
    await w.addPair(bytes('Q?'), bytes('A.'));
    const index = await w.finish();
    expect(index.splits.train).toMatchObject({ tokens: 3 + 6, documents: 2 });
    const split = PackedSplit.open(dir, index, 'train');
    const loader = new BatchLoader(split, 8, 1, 0, special.eod);
    const b = loader.next();
    split.close();
    expect([...b.ids]).toEqual([97, 98, 256, 81, 63, 257, 65, 46]);
    expect([...b.targets]).toEqual([98, 256, 81, 63, 257, 65, 46, 256]);
    // predicting 'Q' and '?' (the prompt) is masked; <sep>, the answer and <eod> count
    expect([...b.mask]).toEqual([1, 1, 0, 0, 1, 1, 1, 1]);
    expect([...b.positions]).toEqual([0, 1, 2, 0, 1, 2, 3, 4]);
    const idx = readPackedIndex(dataDir);
    expect(idx.splits.valid.documents).toBe(6);
    expect(idx.splits.train.documents).toBe(18);
  });

  it('rejects empty input and a sequence longer than the data with clear errors', async () => {
    await expect(packText(path.join(tmp, 'empty'), ['', ''])).rejects.toThrow(/no documents with text/);
    const small = await packText(path.join(tmp, 'small'), ['tiny'], 0);
    const index = readPackedIndex(small);
    const split = PackedSplit.open(small, index, 'train');
    expect(() => new BatchLoader(split, 16, 2, 0)).toThrow(
      /sequence length 16 is larger than the data: the train split has 5 tokens/,
    );
    split.close();
    expect(() => readPackedIndex(path.join(tmp, 'nope'))).toThrow(/data folder not found/);
  });

  it('a learning rate that is not a number is a config error naming the field', () => {
    expect(() => trainConfig(tinyConfig('mha', { lr: 'fast' }))).toThrow(/train\.lr = "fast"; expected a number > 0/);
    expect(() => trainConfig(tinyConfig('mha', { seqLength: 100 }))).toThrow(
      /train\.seqLength = 100 exceeds model\.maxPositions = 64/,
    );
  });
});

describe('trainer', () => {
  it('is deterministic: the same seed gives the same losses, and the loss falls', async () => {
    const config = tinyConfig('lfa');
    const runs: number[][] = [];
    for (let r = 0; r < 2; r++) {
      const model = YuanModel.init(config, lfaAttention as never, 7);
      const t = makeTrainer(config, model, 12);
      runs.push(await losses(t, 12));
      t.dispose();
      model.dispose();
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[0][11]).toBeLessThan(runs[0][0] - 0.5);
  });

  it('accumulating two micro-batches of 1 gives the same step as one micro-batch of 2', async () => {
    const a = tinyConfig('mha');
    const b = tinyConfig('mha', { microBatchSize: 1, gradAccumulation: 2 });
    const out: number[][] = [];
    for (const config of [a, b]) {
      const model = YuanModel.init(config, mhaAttention as never, 3);
      const t = makeTrainer(config, model, 4);
      out.push(await losses(t, 3));
      t.dispose();
      model.dispose();
    }
    out[1].forEach((l, i) => expect(l).toBeCloseTo(out[0][i], 4));
  });

  it('does not leak tensors over 50 steps', async () => {
    const config = tinyConfig('lfa', { seqLength: 8, microBatchSize: 1, gradAccumulation: 2 });
    const model = YuanModel.init(config, lfaAttention as never, 1);
    const t = makeTrainer(config, model, 50);
    await losses(t, 2); // optimizer state is created on the first update
    const before = liveTensorCount();
    await losses(t, 48);
    expect(liveTensorCount()).toBe(before);
    t.dispose();
    model.dispose();
  });

  it('resumes from a checkpoint with the same losses as an uninterrupted run', async () => {
    const config = tinyConfig('lfa');
    const model = YuanModel.init(config, lfaAttention as never, 5);
    const full = makeTrainer(config, model, 8);
    const first = await losses(full, 4);
    const run = path.join(tmp, 'run');
    const meta = (keep: number) => ({
      config,
      specs: modelParameters(config, lfaAttention as never),
      seed: 1,
      totalSteps: 8,
      keep,
    });
    await saveTrainCheckpoint(run, await full.checkpoint(), meta(2));
    const rest = await losses(full, 4);
    await full.dispose();
    model.dispose();
    const st = await openSafetensors(path.join(resolveResumeDir(run), 'model.safetensors'));
    expect(st.entries.get('model.layers.0.self_attn.q_proj.weight')?.shape).toEqual([32, 32]);
    expect(st.entries.get('model.layers.1.mlp.gate_proj.weight')?.shape).toEqual([64, 32]);
    await st.close();
    const { contents } = await loadTrainCheckpoint(resolveResumeDir(run), config, lookup);
    const trainer = makeTrainer(config, YuanModel.fromWeights(config, lfaAttention as never, contents.weights), 8, 999);
    trainer.restore(contents);
    expect(trainer.step).toBe(4);
    expect(await losses(trainer, 4)).toEqual(rest);
    expect(first.length).toBe(4);
    await saveTrainCheckpoint(run, await trainer.checkpoint(), meta(1));
    expect(listCheckpoints(run).map((d) => path.basename(d))).toEqual(['checkpoint-00000008']);
    expect(readdirSync(run).filter((d) => d.includes('partial'))).toEqual([]);
    await trainer.dispose();
    trainer.model.dispose();
    const other = tinyConfig('mha');
    await expect(loadTrainCheckpoint(resolveResumeDir(run), other, lookup)).rejects.toThrow(
      /holds another model .*attention lfa.* than this run's config .*attention mha/,
    );
  });

  it('stops on a NaN loss naming the step, without changing the parameters', async () => {
    const config = tinyConfig('mha');
    const model = YuanModel.init(config, mhaAttention as never, 2);
    const t = makeTrainer(config, model, 5);
    await t.trainStep();
    const norm = model.param('model.norm.weight');
    norm.assign(tf.fill(norm.shape, Number.NaN));
    const before = (await model.weights()).get('model.embed_tokens.weight')!.slice();
    await expect(t.trainStep()).rejects.toThrow(
      /^loss is NaN at step 2: training stopped; parameters were not updated$/,
    );
    expect((await model.weights()).get('model.embed_tokens.weight')).toEqual(before);
    t.dispose();
    model.dispose();
  });

  it('post-validation (step, then roll back on a norm over the clip or not finite) gives the same losses and weights', async () => {
    for (const gradClip of [0.05, 100]) {
      const runs: { losses: number[]; weights: Map<string, Float32Array> }[] = [];
      for (const postValidate of [false, true]) {
        const config = tinyConfig('mha', { gradClip, postValidate });
        const model = YuanModel.init(config, mhaAttention as never, 5);
        const t = makeTrainer(config, model, 4);
        runs.push({ losses: await losses(t, 4), weights: await model.weights() });
        t.dispose();
        model.dispose();
      }
      expect(runs[1].losses).toEqual(runs[0].losses);
      for (const [name, w] of runs[0].weights) expect(runs[1].weights.get(name), name).toEqual(w);
    }
  });

  it('post-validation rolls a step back on a non-finite norm: parameters, moments and step as before', async () => {
    const p = tf.variable(tf.tensor2d([[1, 2]]));
    const params = new Map([['w', p]]);
    const opt = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    const g = new Map([['w', tf.tensor2d([[0.5, -1]])]]);
    opt.update(params, g, 0.1);
    const state = await opt.exportState();
    const before = await p.data();
    const r = await opt.postValidatedUpdate(params, g, 0.1, Promise.resolve(Number.NaN), 1);
    expect(r).toEqual({ norm: Number.NaN, rolledBack: true, applied: false });
    expect(await p.data()).toEqual(before);
    expect(await opt.exportState()).toEqual(state);
    // over the clip: the same as clipping first
    const clipped = new AdamW(opt.options);
    const q = tf.variable(tf.tensor2d([[1, 2]]));
    clipped.update(new Map([['w', q]]), g, 0.1);
    const norm = Math.hypot(0.5, 1);
    const scaled = new Map([['w', tf.mul(g.get('w')!, 0.5 / (norm + 1e-6))]]);
    clipped.update(new Map([['w', q]]), scaled as never, 0.1);
    const r2 = await opt.postValidatedUpdate(params, g, 0.1, norm, 0.5);
    expect(r2).toEqual({ norm, rolledBack: true, applied: true });
    expect(await p.data()).toEqual(await q.data());
    tf.dispose([p, q, g.get('w')!, scaled.get('w')!]);
    opt.dispose();
    clipped.dispose();
  });
});
