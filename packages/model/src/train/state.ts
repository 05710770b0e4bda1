import { existsSync, readdirSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { YuanError, type YuanConfig } from '@yuan/core';
import { openSafetensors, writeSafetensors } from '@yuan/tensor';
import { loadCheckpoint, saveCheckpoint, type AttentionLookup } from '../checkpoint.js';
import type { YuanModel } from '../model.js';
import type { DataPosition } from './data.js';
import type { Trainer } from './trainer.js';

/** `trainer.json` of a training checkpoint: everything besides the tensors that a resumed run needs. */
export interface TrainState {
  format: 'yuan-train-1';
  step: number;
  /** The optimizer's bias-correction step. */
  optimizerStep: number;
  seed: number;
  totalSteps: number;
  data: DataPosition;
  config: YuanConfig;
}

const NAME = /^checkpoint-(\d+)$/;

function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(8, '0')}`;
}

/** Complete checkpoint folders in a run folder, oldest first (a folder is only named `checkpoint-N` once complete). */
export function listCheckpoints(runDir: string): string[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((d) => NAME.test(d) && existsSync(path.join(runDir, d, 'trainer.json')))
    .sort()
    .map((d) => path.join(runDir, d));
}

/**
 * Writes a training checkpoint into `runDir/checkpoint-<step>`: the model in the Hugging Face YUAN layout
 * (config.json + model.safetensors), AdamW moments (optimizer.safetensors, F32) and trainer.json (step, data position,
 * RNG state, config). It is assembled under a temporary name and renamed when complete; older checkpoints beyond
 * `keep` are removed afterwards. Returns the folder.
 */
export async function saveTrainCheckpoint(runDir: string, trainer: Trainer, seed: number, keep: number): Promise<string> {
  const final = path.join(runDir, checkpointName(trainer.step));
  const stage = path.join(runDir, `.${checkpointName(trainer.step)}.partial-${process.pid}`);
  // staging folders left by a process that was killed while writing (this one's are named with its pid)
  if (existsSync(runDir)) {
    for (const d of readdirSync(runDir)) {
      if (/^\.checkpoint-\d+\.partial-\d+/.test(d) && !d.includes(`.partial-${process.pid}`)) await rm(path.join(runDir, d), { recursive: true, force: true });
    }
  }
  await rm(stage, { recursive: true, force: true });
  await saveCheckpoint(stage, trainer.model);
  await writeSafetensors(path.join(stage, 'optimizer.safetensors'), await trainer.optimizer.stateArrays(), { metadata: { format: 'yuan-adamw' } });
  const state: TrainState = {
    format: 'yuan-train-1',
    step: trainer.step,
    optimizerStep: trainer.optimizer.step,
    seed,
    totalSteps: trainer.totalSteps,
    data: trainer.loader.position(),
    config: trainer.model.config,
  };
  await writeFile(path.join(stage, 'trainer.json'), `${JSON.stringify(state, null, 2)}\n`);
  await rm(final, { recursive: true, force: true });
  await rename(stage, final);
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(old, { recursive: true, force: true });
  return final;
}

/** The checkpoint folder `dir` names: itself if it holds trainer.json, else the newest complete checkpoint inside it. */
export function resolveResumeDir(dir: string): string {
  if (!existsSync(dir)) throw new YuanError('checkpoint', `resume folder not found: ${dir}`);
  if (existsSync(path.join(dir, 'trainer.json'))) return dir;
  const all = listCheckpoints(dir);
  if (all.length === 0) throw new YuanError('checkpoint', `${dir}: no complete checkpoint (checkpoint-N with trainer.json) to resume from`);
  return all[all.length - 1];
}

/** Reads trainer.json of a checkpoint folder. */
export async function readTrainState(dir: string): Promise<TrainState> {
  const file = path.join(dir, 'trainer.json');
  let state: TrainState;
  try {
    state = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new YuanError('checkpoint', `${file}: cannot read (${(e as Error).message})`);
  }
  if (state.format !== 'yuan-train-1') throw new YuanError('checkpoint', `${file}: not a yuan training checkpoint`);
  return state;
}

function describe(c: YuanConfig): string {
  const m = c.model;
  return `vocab ${m.vocabSize}, hidden ${m.hiddenSize}, layers ${m.numLayers}, heads ${m.numHeads}, ffn ${m.ffnSize}, attention ${c.attention.name} ${JSON.stringify(c.attention.options)}`;
}

/** Throws a clear error if a checkpoint's model differs in shape or attention from the config of this run. */
export function checkSameModel(saved: YuanConfig, wanted: YuanConfig, dir: string): void {
  const key = (c: YuanConfig) => JSON.stringify([c.model, c.attention.name, c.attention.options]);
  if (key(saved) !== key(wanted)) {
    throw new YuanError('checkpoint', `${dir} holds another model (${describe(saved)}) than this run's config (${describe(wanted)})`);
  }
}

/**
 * Loads a training checkpoint for `config`: the model (its shape must match), and the optimizer moments and data
 * position restored into the trainer `makeTrainer` builds around that model.
 */
export async function loadTrainCheckpoint(
  dir: string,
  config: YuanConfig,
  lookup: AttentionLookup,
  makeTrainer: (model: YuanModel) => Trainer,
): Promise<{ trainer: Trainer; state: TrainState }> {
  const state = await readTrainState(dir);
  checkSameModel(state.config, config, dir);
  const loaded = await loadCheckpoint(dir, lookup);
  const trainer = makeTrainer(loaded);
  const opt = await openSafetensors(path.join(dir, 'optimizer.safetensors'));
  try {
    const arrays = new Map<string, Float32Array>();
    for (const name of opt.entries.keys()) arrays.set(name, await opt.read(name));
    trainer.optimizer.loadState(loaded.params, state.optimizerStep, (n) => arrays.get(n));
  } finally {
    await opt.close();
  }
  trainer.step = state.step;
  trainer.loader.seek(state.data);
  return { trainer, state };
}
