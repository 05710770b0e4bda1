import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { removeStaleStaging, writeAtomic, YuanError, type ParameterSpec, type YuanConfig } from '@yuan/core';
import { openSafetensors, writeSafetensors } from '@yuan/tensor';
import {
  readCheckpoint,
  writeModelFiles,
  CHECKPOINT_MANIFEST as MANIFEST,
  checkpointFolderName as checkpointName,
  checkpointProblem,
  isCheckpointFolderName,
  listCheckpoints,
  readCheckpointManifest as readManifest,
  type AttentionLookup,
  type CheckpointManifest as Manifest,
} from '@yuan/model';
import type { DataPosition } from '@yuan/data';

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

/**
 * AdamW state: the bias-correction step and the moments `m.<param>`, `v.<param>` (fused names) of the whole model. An
 * engine whose state is sharded across ranks writes each rank's shard file itself (`writeOptimizerShard`) and sets
 * `shards` (how many files) with `moments` empty; what a resumed engine receives always has whole moments.
 */
export interface OptimizerState {
  step: number;
  moments: Map<string, Float32Array>;
  /** Number of `optimizer-<k>-of-<n>.safetensors` files the ranks wrote into the checkpoint's shard folder. */
  shards?: number;
}

/**
 * One rank's part of the AdamW moments (Megatron's distributed optimizer writes one such file per data-parallel rank
 * and pipeline stage): `m` and `v` over `ranges` of a flat space that lists `slots` (fused parameter names with their
 * element counts, in flat order); the two arrays concatenate the ranges in order. Written as
 * `optimizer-<index>-of-<count>.safetensors`; the loader reassembles whole moments from any set of such files, so a
 * run saved with one P × D layout resumes with another.
 */
export interface OptimizerShard {
  index: number;
  count: number;
  slots: Array<{ name: string; size: number }>;
  ranges: Array<[start: number, length: number]>;
  m: Float32Array;
  v: Float32Array;
}

const SHARD_FILE = /^optimizer-(\d+)-of-(\d+)\.safetensors$/;

function shardFileName(index: number, count: number): string {
  return `optimizer-${String(index).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

/**
 * The folder where the ranks of a run write their optimizer shards for the checkpoint of `step` before the writer
 * commits it (`runDir/checkpoint-<step>.shards`; on a shared filesystem for a multi-host run).
 */
export function optimizerShardDir(runDir: string, step: number): string {
  return path.join(runDir, `${checkpointName(step)}.shards`);
}

/**
 * Writes one rank's optimizer shard into `dir` (created if needed) atomically and fsynced, so a rank that dies mid-write
 * leaves no file under the final name. Errors: ranges that do not fit the slots' space or arrays of another length
 * (YuanError 'internal').
 */
export async function writeOptimizerShard(dir: string, shard: OptimizerShard): Promise<void> {
  const total = shard.slots.reduce((a, s) => a + s.size, 0);
  const length = shard.ranges.reduce((a, [, l]) => a + l, 0);
  if (
    shard.ranges.some(([s, l]) => s < 0 || l < 0 || s + l > total) ||
    shard.m.length !== length ||
    shard.v.length !== length
  ) {
    throw new YuanError(
      'internal',
      `optimizer shard ${shard.index} of ${shard.count}: ranges and moments do not fit a space of ${total} values`,
    );
  }
  await mkdir(dir, { recursive: true });
  const layout = JSON.stringify({ slots: shard.slots.map((s) => [s.name, s.size]), ranges: shard.ranges });
  await writeAtomic(path.join(dir, shardFileName(shard.index, shard.count)), (tmp) =>
    writeSafetensors(
      tmp,
      [
        { name: 'm', shape: [length], data: shard.m },
        { name: 'v', shape: [length], data: shard.v },
      ],
      { metadata: { format: 'yuan-adamw-shard', layout } },
    ),
  );
}

/** Whole moments `m.<name>`/`v.<name>` for `weights` from the shard files `files` of checkpoint `dir`; every value must be covered. */
async function assembleShards(
  dir: string,
  files: string[],
  weights: ReadonlyMap<string, Float32Array>,
): Promise<Map<string, Float32Array>> {
  const counts = new Set(files.map((f) => Number(SHARD_FILE.exec(f)![2])));
  const n = [...counts][0];
  const indices = new Set(files.map((f) => Number(SHARD_FILE.exec(f)![1])));
  if (counts.size !== 1 || indices.size !== n || [...indices].some((k) => k >= n)) {
    throw new YuanError(
      'checkpoint',
      `${dir}: the optimizer shard files (${files.join(', ')}) are not one complete set of optimizer-<k>-of-<n>`,
    );
  }
  const moments = new Map<string, Float32Array>();
  const covered = new Map<string, Uint8Array>();
  for (const [name, w] of weights) {
    moments.set(`m.${name}`, new Float32Array(w.length));
    moments.set(`v.${name}`, new Float32Array(w.length));
    covered.set(name, new Uint8Array(w.length));
  }
  for (const f of files) {
    const file = path.join(dir, f);
    const st = await openSafetensors(file);
    try {
      let layout: { slots: Array<[string, number]>; ranges: Array<[number, number]> };
      try {
        layout = JSON.parse(st.metadata.layout ?? '');
      } catch {
        throw new YuanError('checkpoint', `${file}: no readable layout in its metadata (not a yuan optimizer shard)`);
      }
      const m = await st.read('m');
      const v = await st.read('v');
      const offsets: number[] = [];
      let total = 0;
      for (const [name, size] of layout.slots) {
        const w = weights.get(name);
        if (!w || w.length !== size)
          throw new YuanError('checkpoint', `${file}: ${name} (${size} values) is not a parameter of this model`);
        offsets.push(total);
        total += size;
      }
      let at = 0;
      for (const [start, length] of layout.ranges) {
        if (start < 0 || start + length > total || at + length > m.length || m.length !== v.length)
          throw new YuanError(
            'checkpoint',
            `${file}: range [${start}, ${start + length}) does not fit its layout or moments`,
          );
        for (const [i, [name, size]] of layout.slots.entries()) {
          const from = Math.max(start, offsets[i]);
          const to = Math.min(start + length, offsets[i] + size);
          if (to <= from) continue;
          const src = at + from - start;
          moments.get(`m.${name}`)!.set(m.subarray(src, src + to - from), from - offsets[i]);
          moments.get(`v.${name}`)!.set(v.subarray(src, src + to - from), from - offsets[i]);
          covered.get(name)!.fill(1, from - offsets[i], to - offsets[i]);
        }
        at += length;
      }
    } finally {
      await st.close();
    }
  }
  for (const [name, c] of covered) {
    const gap = c.indexOf(0);
    if (gap >= 0)
      throw new YuanError(
        'checkpoint',
        `${dir}: the optimizer shards do not cover ${name} (value ${gap} is missing): the optimizer state is incomplete`,
      );
  }
  return moments;
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

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * How checkpoints hold the trained weights. The default is the whole model as a Hugging Face YUAN folder
 * (config.json + model.safetensors); a run that trains an adapter over a frozen model writes PEFT's adapter files.
 */
export interface WeightFiles {
  /** Writes `weights` (the engine's checkpoint weights) into a checkpoint's staging folder. */
  write(folder: string, weights: Map<string, Float32Array>): Promise<void>;
  /** Reads them back from a complete checkpoint folder (errors name the file). */
  read(folder: string): Promise<Map<string, Float32Array>>;
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
  /** How the weights are written (default: the whole model's Hugging Face files). */
  files?: WeightFiles;
}

/**
 * Writes a training checkpoint `runDir/checkpoint-<step>`: the model in the Hugging Face YUAN layout (config.json +
 * model.safetensors), the AdamW moments (optimizer.safetensors, F32; or, when `contents.optimizer.shards` is set, the
 * ranks' `optimizer-<k>-of-<n>.safetensors` files linked in from `optimizerShardDir`), trainer.json, and last
 * manifest.json (sizes and SHA-256 of the others). It is assembled in a staging folder owned by this process, every file and the folder are
 * fsynced, and it is renamed into place; staging folders of dead writers are removed, a live writer's never. Returns
 * the folder.
 */
export async function saveTrainCheckpoint(
  runDir: string,
  contents: CheckpointContents,
  meta: CheckpointMeta,
): Promise<string> {
  const final = path.join(runDir, checkpointName(contents.step));
  const shardDir = optimizerShardDir(runDir, contents.step);
  await mkdir(runDir, { recursive: true });
  await removeStaleStaging(runDir);
  await writeAtomic(final, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    if (meta.files) await meta.files.write(tmp, contents.weights);
    else await writeModelFiles(tmp, meta.config, meta.specs, contents.weights);
    const shards = contents.optimizer.shards;
    if (shards) {
      // every rank wrote its shard and passed a barrier before this: hard-link them in (the same filesystem), so a
      // commit that fails later leaves the shards where they were; the shard folder goes only after the commit
      for (let k = 0; k < shards; k++) {
        const name = shardFileName(k, shards);
        if (!existsSync(path.join(shardDir, name)))
          throw new YuanError(
            'checkpoint',
            `${shardDir}: ${name} is missing (a rank did not write its optimizer shard, or --out is not on a filesystem every rank shares)`,
          );
        await link(path.join(shardDir, name), path.join(tmp, name));
      }
    } else {
      const moments = [...contents.optimizer.moments].map(([name, data]) => ({ name, shape: [data.length], data }));
      await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), moments, { metadata: { format: 'yuan-adamw' } });
    }
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
  await rm(shardDir, { recursive: true, force: true });
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - meta.keep))) await rm(old, { recursive: true, force: true });
  return final;
}

/**
 * The checkpoint folder `dir` names: itself if it is a checkpoint (it must be complete), else the newest complete
 * checkpoint inside it. Incomplete or damaged checkpoints are never chosen; with none complete it is an error.
 * `onSkip` hears of every newer checkpoint passed over, with why it is incomplete.
 */
export function resolveResumeDir(dir: string, onSkip?: (checkpoint: string, problem: string) => void): string {
  if (!existsSync(dir)) throw new YuanError('checkpoint', `resume folder not found: ${dir}`);
  if (
    existsSync(path.join(dir, 'trainer.json')) ||
    existsSync(path.join(dir, MANIFEST)) ||
    isCheckpointFolderName(path.basename(dir))
  ) {
    const problem = checkpointProblem(dir);
    if (problem) throw new YuanError('checkpoint', `cannot resume: ${problem}`);
    return dir;
  }
  const all = listCheckpoints(dir);
  if (all.length > 0 && onSkip) {
    const chosen = path.basename(all[all.length - 1]);
    for (const d of readdirSync(dir)
      .filter((x) => isCheckpointFolderName(x) && x > chosen)
      .sort())
      onSkip(path.join(dir, d), checkpointProblem(path.join(dir, d)) ?? 'incomplete');
  }
  if (all.length === 0) {
    const broken = existsSync(dir) ? readdirSync(dir).filter((d) => isCheckpointFolderName(d)) : [];
    const why = broken.length
      ? ` (incomplete: ${broken.map((d) => checkpointProblem(path.join(dir, d))).join('; ')})`
      : '';
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
  const adapter = c.adapter ? `, adapter ${c.adapter.name} ${JSON.stringify(c.adapter.options ?? {})}` : '';
  return `vocab ${m.vocabSize}, hidden ${m.hiddenSize}, layers ${m.numLayers}, heads ${m.numHeads}, ffn ${m.ffnSize}, attention ${c.attention.name} ${JSON.stringify(c.attention.options)}${adapter}`;
}

/** Throws a clear error if a checkpoint's model differs in shape, attention or adapter from the config of this run. */
export function checkSameModel(saved: YuanConfig, wanted: YuanConfig, dir: string): void {
  const key = (c: YuanConfig) => JSON.stringify([c.model, c.attention.name, c.attention.options, c.adapter ?? null]);
  if (key(saved) !== key(wanted)) {
    throw new YuanError(
      'checkpoint',
      `${dir} holds another model (${describe(saved)}) than this run's config (${describe(wanted)})`,
    );
  }
}

/**
 * Loads a complete training checkpoint for `config`: every file is checked against the manifest's SHA-256, the model
 * must have this run's shape (and adapter; `files` reads the weights when they are not the whole model's), and the optimizer state must hold both moments of every parameter (a missing one is an
 * error, never silently zero). The contents are layout-free, so any engine (P × D) can resume from them.
 */
export async function loadTrainCheckpoint(
  dir: string,
  config: YuanConfig,
  lookup: AttentionLookup,
  files?: WeightFiles,
): Promise<{ state: TrainState; contents: CheckpointContents }> {
  const manifest = readManifest(dir);
  if (typeof manifest === 'string') throw new YuanError('checkpoint', `cannot resume: ${manifest}`);
  for (const [name, f] of Object.entries(manifest.files)) {
    if ((await sha256(path.join(dir, name))) !== f.sha256)
      throw new YuanError(
        'checkpoint',
        `cannot resume: ${path.join(dir, name)} does not match its SHA-256 in the manifest (damaged)`,
      );
  }
  const state = await readTrainState(dir);
  checkSameModel(state.config, config, dir);
  const weights = files ? await files.read(dir) : (await readCheckpoint(dir, lookup)).weights;
  const file = path.join(dir, 'optimizer.safetensors');
  const shardFiles = Object.keys(manifest.files)
    .filter((f) => SHARD_FILE.test(f))
    .sort();
  if (!existsSync(file) && shardFiles.length) {
    const moments = await assembleShards(dir, shardFiles, weights);
    return {
      state,
      contents: { step: state.step, weights, optimizer: { step: state.optimizerStep, moments }, data: state.data },
    };
  }
  const opt = await openSafetensors(file);
  const moments = new Map<string, Float32Array>();
  try {
    for (const [name, w] of weights) {
      for (const key of [`m.${name}`, `v.${name}`]) {
        if (!opt.entries.has(key))
          throw new YuanError('checkpoint', `${file} has no ${key}: the optimizer state is incomplete`);
        const data = await opt.read(key);
        if (data.length !== w.length)
          throw new YuanError('checkpoint', `${file}: ${key} has ${data.length} values; ${name} has ${w.length}`);
        moments.set(key, data);
      }
    }
  } finally {
    await opt.close();
  }
  return {
    state,
    contents: { step: state.step, weights, optimizer: { step: state.optimizerStep, moments }, data: state.data },
  };
}
