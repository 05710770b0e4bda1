import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig, type YuanConfig } from '@yuan/core';
import { attentionNamed } from '../../model/test/attention.js';
import {
  singleProcessEngine,
  trainConfig,
  type CheckpointContents,
  type EngineFactory,
  type EngineSetup,
  type TrainingEngine,
} from '@yuan/train';
import { PackWriter } from '@yuan/data';

/** The built attention-lfa module, for the stage workers. */
export const LFA_MODULE = new URL('../../attention-lfa/dist/index.js', import.meta.url).href;

export const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-pipe-'));
const special = { eod: 256, sep: 257, pad: 258 };

export function tinyConfig(attention: 'lfa' | 'mha', layers = 4, train: Record<string, unknown> = {}): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 264, hiddenSize: 16, numLayers: layers, numHeads: 2, ffnSize: 32, maxPositions: 32 },
    attention: { name: attention, options: {} },
    train: { seqLength: 8, microBatchSize: 2, warmupSteps: 2, lr: 5e-3, gradClip: 0.5, checkpointEvery: 0, ...train },
  });
}

export async function packedData(): Promise<string> {
  const dir = path.join(tmp, 'data');
  const w = await PackWriter.create(dir, { tokenizer: { name: 'bytes' }, vocabSize: 264, special, validFraction: 0.2 });
  for (let i = 0; i < 30; i++)
    await w.addDocument([...Buffer.from(`Doc ${i}: pipelines pass activations forward and gradients back ${i * 11}.`)]);
  await w.finish();
  return dir;
}

export function setupOf(
  config: YuanConfig,
  data: string,
  totalSteps: number,
  resume?: CheckpointContents,
  gradAccumulation?: number,
): EngineSetup {
  const c = gradAccumulation ? { ...config, train: { ...(config.train ?? {}), gradAccumulation } } : config;
  return {
    config: c,
    train: trainConfig(c as YuanConfig),
    attention: attentionNamed(config.attention.name),
    data,
    seed: 3,
    totalSteps,
    resume,
    backend: 'cpu',
  };
}

/** Runs `steps` steps of an engine; returns the losses, each step's layer-forward count and the final checkpoint contents; disposes it. */
export async function run(
  factory: EngineFactory,
  setup: EngineSetup,
  steps: number,
): Promise<{ losses: number[]; contents: CheckpointContents; engine: TrainingEngine; layerForwards: number[] }> {
  const engine = await factory(setup);
  try {
    const losses: number[] = [];
    const layerForwards: number[] = [];
    for (let i = 0; i < steps; i++) {
      const m = await engine.trainStep();
      losses.push(m.loss);
      layerForwards.push(m.layerForwards ?? Number.NaN);
    }
    return { losses, contents: await engine.checkpoint(), engine, layerForwards };
  } finally {
    await engine.dispose();
  }
}

export const single = singleProcessEngine;

export function relDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.max(Math.abs(b[i]), 1e-12)));
}

export function maxWeightDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [n, x] of b) {
    const y = a.get(n);
    if (!y) return Number.POSITIVE_INFINITY;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}
