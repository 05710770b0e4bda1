import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { removeStaleStaging, writeAtomic, YuanError, type ParameterSpec, type YuanConfig } from '@yuan/core';
import { openSafetensors, writeSafetensors } from '@yuan/tensor';
import { readCheckpoint, writeModelFiles, type AttentionLookup } from '../checkpoint.js';
import type { DataPosition } from './data.js';

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

/** AdamW state of the whole model: the bias-correction step and the moments `m.<param>`, `v.<param>` (fused names). */
export interface OptimizerState {
  step: number;
  moments: Map<string, Float32Array>;
}

/** What a training engine hands the loop for a checkpoint, and what a resumed engine starts from (any P × D layout). */
export interface CheckpointContents {
  /** Completed optimizer steps. */
  step: number;
  /** The whole model's weights by fused parameter name. */
  weights: Map<string, Float32Array>;
  optimizer: OptimizerState;
  /** Where the data loader continues. */
  data: DataPosition;
}

/** `manifest.json`, written last into a checkpoint: every other file with its size (bytes) and SHA-256. */
interface Manifest {
  format: 'yuan-checkpoint-1';
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

const NAME = /^checkpoint-(\d+)$/;
const MANIFEST = 'manifest.json';

function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(8, '0')}`;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function readManifest(dir: string): Manifest | string {
  const file = path.join(dir, MANIFEST);
  if (!existsSync(file)) return `${dir}: no ${MANIFEST} (the checkpoint was not completed)`;
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return `${file}: not valid JSON (${(e as Error).message})`;
  }
  if (m?.format !== 'yuan-checkpoint-1' || typeof m.files !== 'object') return `${file}: not a yuan checkpoint manifest`;
  for (const [name, f] of Object.entries(m.files)) {
    const p = path.join(dir, name);
    if (!existsSync(p)) return `${dir}: ${name} is missing`;
    const bytes = statSync(p).size;
    if (bytes !== f.bytes) return `${dir}: ${name} has ${bytes} bytes; the manifest says ${f.bytes}`;
  }
  return m;
}

/** Why `dir` is not a complete training checkpoint, or undefined when it is (manifest present, every file its size). */
export function checkpointProblem(dir: string): string | undefined {
  const m = readManifest(dir);
  return typeof m === 'string' ? m : undefined;
}

/** Complete checkpoint folders in a run folder, oldest first: `checkpoint-N` with a manifest whose files all match it. */
export function listCheckpoints(runDir: string): string[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((d) => NAME.test(d) && checkpointProblem(path.join(runDir, d)) === undefined)
    .sort()
    .map((d) => path.join(runDir, d));
}

/** What `saveTrainCheckpoint` records besides the engine's contents. */
export interface CheckpointMeta {
  config: YuanConfig;
  /** The whole model's parameter specs (`modelParameters`), for the HF key names and fused parts. */
  specs: readonly ParameterSpec[];
  seed: number;
  totalSteps: number;
  /** Complete checkpoints kept in the run folder (older ones are removed after this one is committed). */
  keep: number;
}

/**
 * Writes a training checkpoint `runDir/checkpoint-<step>`: the model in the Hugging Face YUAN layout (config.json +
 * model.safetensors), the AdamW moments (optimizer.safetensors, F32), trainer.json, and last manifest.json (sizes and
 * SHA-256 of the others). It is assembled in a staging folder owned by this process, every file and the folder are
 * fsynced, and it is renamed into place; staging folders of dead writers are removed, a live writer's never. Returns
 * the folder.
 */
export async function saveTrainCheckpoint(runDir: string, contents: CheckpointContents, meta: CheckpointMeta): Promise<string> {
  const final = path.join(runDir, checkpointName(contents.step));
  await mkdir(runDir, { recursive: true });
  await removeStaleStaging(runDir);
  await writeAtomic(final, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeModelFiles(tmp, meta.config, meta.specs, contents.weights);
    const moments = [...contents.optimizer.moments].map(([name, data]) => ({ name, shape: [data.length], data }));
    await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), moments, { metadata: { format: 'yuan-adamw' } });
    const state: TrainState = {
      format: 'yuan-train-1',
      step: contents.step,
      optimizerStep: contents.optimizer.step,
      seed: meta.seed,
      totalSteps: meta.totalSteps,
      data: contents.data,
      config: meta.config,
    };
    await writeFile(path.join(tmp, 'trainer.json'), `${JSON.stringify(state, null, 2)}\n`);
    const manifest: Manifest = { format: 'yuan-checkpoint-1', step: contents.step, files: {} };
    for (const name of readdirSync(tmp).sort()) {
      const p = path.join(tmp, name);
      manifest.files[name] = { bytes: statSync(p).size, sha256: await sha256(p) };
    }
    await writeFile(path.join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  });
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - meta.keep))) await rm(old, { recursive: true, force: true });
  return final;
}

/**
 * The checkpoint folder `dir` names: itself if it is a checkpoint (it must be complete), else the newest complete
 * checkpoint inside it. Incomplete or damaged checkpoints are never chosen; with none complete it is an error.
 */
export function resolveResumeDir(dir: string): string {
  if (!existsSync(dir)) throw new YuanError('checkpoint', `resume folder not found: ${dir}`);
  if (existsSync(path.join(dir, 'trainer.json')) || existsSync(path.join(dir, MANIFEST)) || NAME.test(path.basename(dir))) {
    const problem = checkpointProblem(dir);
    if (problem) throw new YuanError('checkpoint', `cannot resume: ${problem}`);
    return dir;
  }
  const all = listCheckpoints(dir);
  if (all.length === 0) {
    const broken = existsSync(dir) ? readdirSync(dir).filter((d) => NAME.test(d)) : [];
    const why = broken.length ? ` (incomplete: ${broken.map((d) => checkpointProblem(path.join(dir, d))).join('; ')})` : '';
    throw new YuanError('checkpoint', `${dir}: no complete checkpoint to resume from${why}`);
  }
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
 * Loads a complete training checkpoint for `config`: every file is checked against the manifest's SHA-256, the model
 * must have this run's shape, and the optimizer state must hold both moments of every parameter (a missing one is an
 * error, never silently zero). The contents are layout-free, so any engine (P × D) can resume from them.
 */
export async function loadTrainCheckpoint(
  dir: string,
  config: YuanConfig,
  lookup: AttentionLookup,
): Promise<{ state: TrainState; contents: CheckpointContents }> {
  const manifest = readManifest(dir);
  if (typeof manifest === 'string') throw new YuanError('checkpoint', `cannot resume: ${manifest}`);
  for (const [name, f] of Object.entries(manifest.files)) {
    if ((await sha256(path.join(dir, name))) !== f.sha256) throw new YuanError('checkpoint', `cannot resume: ${path.join(dir, name)} does not match its SHA-256 in the manifest (damaged)`);
  }
  const state = await readTrainState(dir);
  checkSameModel(state.config, config, dir);
  const { weights } = await readCheckpoint(dir, lookup);
  const file = path.join(dir, 'optimizer.safetensors');
  const opt = await openSafetensors(file);
  const moments = new Map<string, Float32Array>();
  try {
    for (const [name, w] of weights) {
      for (const key of [`m.${name}`, `v.${name}`]) {
        if (!opt.entries.has(key)) throw new YuanError('checkpoint', `${file} has no ${key}: the optimizer state is incomplete`);
        const data = await opt.read(key);
        if (data.length !== w.length) throw new YuanError('checkpoint', `${file}: ${key} has ${data.length} values; ${name} has ${w.length}`);
        moments.set(key, data);
      }
    }
  } finally {
    await opt.close();
  }
  return { state, contents: { step: state.step, weights, optimizer: { step: state.optimizerStep, moments }, data: state.data } };
}
