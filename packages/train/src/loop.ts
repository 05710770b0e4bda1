import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic, YuanError, type YuanConfig } from '@yuan/core';
import { listCheckpoints, modelParameters, type AttentionLookup } from '@yuan/model';
import { trainConfig, type TrainConfig } from './config.js';
import { evalBatches, PackedSplit, positionResetId, readPackedIndex, type Batch, type PackedIndex } from '@yuan/data';
import type { EngineFactory, StepMetrics, TrainingEngine } from './engine.js';
import { lineChartSvg, smooth } from './plot.js';
import {
  loadTrainCheckpoint,
  optimizerShardDir,
  resolveResumeDir,
  saveTrainCheckpoint,
  type WeightFiles,
} from './state.js';
import { singleProcessEngine } from './trainer.js';

/** What a training run is asked to do. */
export interface RunOptions {
  config: YuanConfig;
  /** Resolves the config's attention plugin (the registry's `get('attention', name)`). */
  lookup: AttentionLookup;
  /** The packed data folder. */
  data: string;
  /** Total optimizer steps of the run. */
  steps: number;
  /** The run folder: checkpoints, metrics.jsonl, loss.svg. */
  out: string;
  seed: number;
  /** The engine that computes steps; default the single-process trainer. */
  engine?: EngineFactory;
  /** Metrics JSONL file (default OUT/metrics.jsonl). */
  metrics?: string;
  /** A checkpoint or run folder to continue from (its newest complete checkpoint). */
  resume?: string;
  /** A packed folder whose windows give the test loss at the end (its train and valid splits). */
  test?: string;
  testBatches?: number;
  /** The tensor backend name (passed to engines that start workers). */
  backend?: string;
  /** Called after every step with the step, the total and a one-line status. */
  onStep?(step: number, total: number, status: string): void;
  /** Called with notes (resume, written files). */
  onNote?(text: string): void;
  /** Prefix of status lines (the variant name in an experiment). */
  label?: string;
  /** How checkpoints hold the trained weights (default: the whole model's Hugging Face files; an adapter run's PEFT files). */
  weightFiles?: WeightFiles;
}

/** What a finished run reports. */
export interface RunResult {
  parameters: number;
  steps: number;
  finalLoss: number;
  validLoss: number;
  testLoss?: number;
  /** Mean seconds per step over the steps of this process, skipping the first (warm-up) step when there are more. */
  secondsPerStep: number;
  tokensPerSecond: number;
  history: StepMetrics[];
  valid: [number, number][];
}

/**
 * Checks a data source once, before the first step, so bad data stops the run with one line instead of a kernel's
 * stack trace mid-training: the tokenizer's vocabulary fits the model; the end-of-document id is known (when positions
 * reset), fits the files' integer type and the vocabulary; every token id of every non-empty split is inside the
 * model's vocabulary (one typed-array pass per token file). Returns the id positions restart after.
 */
function checkData(index: PackedIndex, config: YuanConfig, tc: TrainConfig, dir: string): number | undefined {
  const vocab = config.model.vocabSize;
  if (index.vocabSize > vocab) {
    throw new YuanError(
      'input',
      `${dir} was tokenized with ${index.tokenizer.name} (vocabulary ${index.vocabSize}) but the model's vocabulary is ${vocab}`,
    );
  }
  const eod = positionResetId(index, tc, dir);
  const checked = tc.eodId ?? eod;
  const given = tc.eodId !== undefined;
  const what = given
    ? `the end-of-document id ${checked} (--eod-id, train.eodId)`
    : `the <eod> id ${checked} of ${dir}'s index.json`;
  if (checked !== undefined && checked >= vocab) {
    throw new YuanError(
      given ? 'usage' : 'input',
      `${what} is outside the model's vocabulary of ${vocab} (ids 0..${vocab - 1})`,
    );
  }
  for (const name of ['train', 'valid'] as const) {
    if (index.splits[name].tokens === 0) continue;
    const split = PackedSplit.open(dir, index, name);
    try {
      if (checked !== undefined && checked > split.idType.max) {
        throw new YuanError(
          given ? 'usage' : 'input',
          `${what} cannot occur in ${split.file}: its ${split.idType.name} ids are 0..${split.idType.max}`,
        );
      }
      split.checkIds(vocab);
    } finally {
      split.close();
    }
  }
  return eod;
}

/**
 * Checks the data a run of `config` would train on (a packed folder or a Megatron PREFIX) as `runTraining` does
 * before its first step: for a launcher that starts ranks, so bad data stops the job once, before any rank starts.
 * Throws the same one-line YuanErrors ('input' for bad data, 'usage' for an unknown or impossible `train.eodId`).
 */
export function checkTrainingData(config: YuanConfig, data: string): void {
  checkData(readPackedIndex(data), config, trainConfig(config), data);
}

/** Keeps the metrics lines of steps up to `step` (a resumed run rewrites what came after its checkpoint). */
async function truncateMetrics(file: string, step: number): Promise<void> {
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false;
      }
    });
  await writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
}

function readMetrics(file: string): { train: [number, number][]; valid: [number, number][] } {
  const train: [number, number][] = [];
  const valid: [number, number][] = [];
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    const m = JSON.parse(l) as { step: number; loss?: number; validLoss?: number };
    if (m.loss !== undefined) train.push([m.step, m.loss]);
    if (m.validLoss !== undefined) valid.push([m.step, m.validLoss]);
  }
  return { train, valid };
}

/** Writes OUT/loss.svg from a metrics file: raw and smoothed training loss, and validation loss. Returns its path. */
export async function writeLossPlot(metricsFile: string, out: string, title: string): Promise<string> {
  const { train, valid } = readMetrics(metricsFile);
  const svg = lineChartSvg(title, 'step', 'loss (nats/token)', [
    { label: 'train (raw)', points: train, faint: true },
    { label: 'train (smoothed)', points: smooth(train) },
    { label: 'valid', points: valid, markers: true },
  ]);
  const file = path.join(out, 'loss.svg');
  await writeFileAtomic(file, svg);
  return file;
}

/**
 * A fresh run into a folder that holds another run's checkpoints would mix the two (and the checkpoint cap could drop
 * the new run's checkpoints in favour of the old, higher-numbered ones): that run's checkpoints, metrics and plot are
 * moved into `OUT/previous-<time>` first, so nothing is lost. Returns that folder, or undefined when there was none.
 */
async function setAsideEarlierRun(out: string, metricsFile: string): Promise<string | undefined> {
  const names = readdirSync(out).filter((d) => /^checkpoint-\d+$/.test(d));
  if (names.length === 0) return undefined;
  const dest = path.join(out, `previous-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`);
  await mkdir(dest, { recursive: true });
  const files =
    path.resolve(path.dirname(metricsFile)) === path.resolve(out)
      ? [path.basename(metricsFile), 'loss.svg']
      : ['loss.svg'];
  for (const name of [...names, ...files]) {
    if (existsSync(path.join(out, name))) await rename(path.join(out, name), path.join(dest, name));
  }
  return dest;
}

function testBatchesOf(dir: string, config: YuanConfig, tc: TrainConfig, count: number): Batch[] {
  const index = readPackedIndex(dir);
  const eod = checkData(index, config, tc, dir);
  const { seqLength, microBatchSize: rows } = tc;
  const out: Batch[] = [];
  for (const name of ['train', 'valid'] as const) {
    if (index.splits[name].tokens === 0) continue;
    const split = PackedSplit.open(dir, index, name);
    out.push(...evalBatches(split, seqLength, rows, count - out.length, eod));
    split.close();
    if (out.length >= count) break;
  }
  if (out.length === 0)
    throw new YuanError('input', `test data ${dir} has fewer than ${seqLength + 1} tokens: no test window`);
  return out;
}

/**
 * The training loop as a library: drives any `TrainingEngine` over a packed data folder. Metrics lines (step, loss,
 * lr, gradNorm, tokensPerSecond; validLoss every `train.validEvery` steps), checkpoints every `train.checkpointEvery`
 * steps and at the end (see `saveTrainCheckpoint`), a loss plot, progress through `onStep`. `resume` continues from
 * the newest complete checkpoint with the same losses as an uninterrupted run, whatever engine wrote it.
 * Every data source (train, valid, test) is checked before the first step (token ids inside the vocabulary, a known
 * end-of-document id that fits the files' dtype and the vocabulary), so every engine and rank starts on checked data.
 * Errors: bad data or config (YuanError 'input'/'config'), nothing left to train or an unknown/impossible `--eod-id`
 * ('usage'), a non-finite loss ('nan', naming the last good checkpoint).
 */
export async function runTraining(o: RunOptions): Promise<RunResult> {
  const tc = trainConfig(o.config);
  const attention = o.lookup(o.config.attention.name);
  const index = readPackedIndex(o.data);
  const eod = checkData(index, o.config, tc, o.data);
  const validSplit = index.splits.valid.tokens > 0 ? PackedSplit.open(o.data, index, 'valid') : undefined;
  const validBatches = validSplit ? evalBatches(validSplit, tc.seqLength, tc.microBatchSize, tc.validBatches, eod) : [];
  validSplit?.close();
  const testBatches = o.test ? testBatchesOf(o.test, o.config, tc, o.testBatches ?? 16) : undefined;

  await mkdir(o.out, { recursive: true });
  const metricsFile = o.metrics ?? path.join(o.out, 'metrics.jsonl');
  let resume;
  let resumeDir: string | undefined;
  const passedOver: string[] = [];
  if (o.resume) {
    resumeDir = resolveResumeDir(o.resume, (skipped, problem) =>
      passedOver.push(`${o.label ?? ''}note: passing over ${skipped}: ${problem}`),
    );
    resume = (await loadTrainCheckpoint(resumeDir, o.config, o.lookup, o.weightFiles)).contents;
    if (resume.step >= o.steps)
      throw new YuanError(
        'usage',
        `${resumeDir} is at step ${resume.step}; --steps ${o.steps} leaves nothing to train`,
      );
  }
  const factory = o.engine ?? singleProcessEngine;
  const engine: TrainingEngine = await factory({
    config: o.config,
    train: tc,
    attention,
    data: o.data,
    seed: o.seed,
    totalSteps: o.steps,
    resume,
    backend: o.backend,
  });
  const writer = engine.writer !== false;
  try {
    if (!writer) {
      // another rank writes; this one only takes part in the steps, validation and (collective) checkpoints
    } else if (resume) {
      for (const n of passedOver) o.onNote?.(n);
      await truncateMetrics(metricsFile, resume.step);
      o.onNote?.(`${o.label ?? ''}resumed from ${resumeDir} at step ${resume.step}`);
    } else {
      const moved = await setAsideEarlierRun(o.out, metricsFile);
      if (moved)
        o.onNote?.(
          `${o.label ?? ''}${o.out} held an earlier run: moved its checkpoints and metrics to ${moved} (give --resume ${o.out} to continue a run instead)`,
        );
      await writeFile(metricsFile, '');
    }
  } catch (e) {
    await engine.dispose(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
  resume = undefined;
  const specs = modelParameters(o.config, attention);
  const log = async (rec: Record<string, unknown>) => {
    if (writer) await appendFile(metricsFile, `${JSON.stringify(rec)}\n`);
  };
  const history: StepMetrics[] = [];
  const valid: [number, number][] = [];
  let validLoss = Number.NaN;
  let failure: Error | undefined;
  try {
    while (engine.step < o.steps) {
      // the step after this one follows at once unless a validation or a checkpoint comes between (or it is the last)
      const upcoming = engine.step + 1;
      const pause =
        upcoming >= o.steps ||
        (tc.validEvery > 0 && upcoming % tc.validEvery === 0) ||
        (tc.checkpointEvery > 0 && upcoming % tc.checkpointEvery === 0);
      const m = await engine.trainStep({ another: !pause });
      history.push(m);
      await log({
        step: m.step,
        loss: m.loss,
        lr: m.lr,
        gradNorm: m.gradNorm,
        tokensPerSecond: Math.round(m.tokensPerSecond),
        seconds: m.seconds,
        tokens: m.tokens,
        ...(m.layerForwards !== undefined ? { layerForwards: m.layerForwards } : {}),
        ...(m.memory ?? {}),
      });
      const last = m.step === o.steps;
      if ((tc.validEvery > 0 && m.step % tc.validEvery === 0) || last) {
        validLoss = await engine.evaluate(validBatches);
        if (Number.isFinite(validLoss)) {
          valid.push([m.step, validLoss]);
          await log({ step: m.step, validLoss });
        }
      }
      const vl = Number.isFinite(validLoss) ? ` valid ${validLoss.toFixed(4)}` : '';
      if (writer)
        o.onStep?.(
          m.step,
          o.steps,
          `${o.label ?? ''}loss ${m.loss.toFixed(4)}${vl} lr ${m.lr.toExponential(2)} |g| ${m.gradNorm.toFixed(3)} ${Math.round(m.tokensPerSecond)} tok/s`,
        );
      if ((tc.checkpointEvery > 0 && m.step % tc.checkpointEvery === 0) || last) {
        const contents = await engine.checkpoint(optimizerShardDir(o.out, m.step));
        if (writer)
          await saveTrainCheckpoint(o.out, contents, {
            config: o.config,
            specs,
            seed: o.seed,
            totalSteps: o.steps,
            keep: tc.keepCheckpoints,
            files: o.weightFiles,
          });
      }
    }
    const measured = history.length > 1 ? history.slice(1) : history;
    const seconds = measured.reduce((a, m) => a + m.seconds, 0);
    const testLoss = testBatches ? await engine.evaluate(testBatches) : undefined;
    if (testLoss !== undefined) await log({ step: engine.step, testLoss });
    if (writer) {
      const plot = await writeLossPlot(
        metricsFile,
        o.out,
        `${o.config.preset} · ${o.config.attention.name} · ${engine.parameterCount.toLocaleString('en-US')} params`,
      );
      o.onNote?.(`${o.label ?? ''}wrote ${plot}, metrics ${metricsFile}, checkpoint in ${o.out}`);
    }
    return {
      parameters: engine.parameterCount,
      steps: engine.step,
      finalLoss: history[history.length - 1].loss,
      validLoss,
      testLoss,
      secondsPerStep: seconds / measured.length,
      tokensPerSecond: measured.reduce((a, m) => a + m.tokens, 0) / seconds,
      history,
      valid,
    };
  } catch (e) {
    failure = e instanceof Error ? e : new Error(String(e));
    if (e instanceof YuanError && e.code === 'nan') {
      const kept = listCheckpoints(o.out);
      throw new YuanError(
        'nan',
        `${e.message}; ${kept.length ? `the last good checkpoint is ${kept[kept.length - 1]}` : 'no checkpoint was written yet'}`,
      );
    }
    throw e;
  } finally {
    await engine.dispose(failure);
  }
}
