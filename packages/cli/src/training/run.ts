import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { YuanError, type PluginRegistry, type YuanConfig } from '@yuan/core';
import {
  BatchLoader,
  evalBatches,
  listCheckpoints,
  loadTrainCheckpoint,
  PackedSplit,
  readPackedIndex,
  resolveResumeDir,
  saveTrainCheckpoint,
  trainConfig,
  Trainer,
  YuanModel,
  type Batch,
  type PackedIndex,
  type StepMetrics,
} from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import type { CommandIO } from '../command.js';
import { attentionLookup } from '../context.js';
import { lineChartSvg, smooth } from './plot.js';
import { Progress } from './progress.js';

/** What a training run is asked to do. */
export interface RunOptions {
  config: YuanConfig;
  registry: PluginRegistry;
  data: string;
  steps: number;
  out: string;
  seed: number;
  /** Metrics JSONL file (default OUT/metrics.jsonl). */
  metrics?: string;
  resume?: string;
  /** A packed folder whose windows give the test loss at the end (its train and valid splits). */
  test?: string;
  testBatches?: number;
  backend?: string;
  io: CommandIO;
  /** Prefix of progress lines (the variant name in an experiment). */
  label?: string;
}

/** What a finished run reports. */
export interface RunResult {
  /** The tensor backend the run used. */
  backend: string;
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

function checkData(index: PackedIndex, config: YuanConfig, dir: string): void {
  if (index.vocabSize > config.model.vocabSize) {
    throw new YuanError('input', `${dir} was tokenized with ${index.tokenizer.name} (vocabulary ${index.vocabSize}) but the model's vocabulary is ${config.model.vocabSize}`);
  }
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
  await writeFile(file, kept.map((l) => `${l}\n`).join(''));
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

/** Writes OUT/loss.svg from a metrics file: raw and smoothed training loss, and validation loss. */
export async function writeLossPlot(metricsFile: string, out: string, title: string): Promise<string> {
  const { train, valid } = readMetrics(metricsFile);
  const svg = lineChartSvg(title, 'step', 'loss (nats/token)', [
    { label: 'train (raw)', points: train, faint: true },
    { label: 'train (smoothed)', points: smooth(train) },
    { label: 'valid', points: valid, markers: true },
  ]);
  const file = path.join(out, 'loss.svg');
  await writeFile(file, svg);
  return file;
}

function testBatchesOf(dir: string, config: YuanConfig, seqLength: number, rows: number, count: number, eod: number | undefined): Batch[] {
  const index = readPackedIndex(dir);
  checkData(index, config, dir);
  const out: Batch[] = [];
  for (const name of ['train', 'valid'] as const) {
    if (index.splits[name].tokens === 0) continue;
    const split = PackedSplit.open(dir, index, name);
    out.push(...evalBatches(split, seqLength, rows, count - out.length, eod));
    split.close();
    if (out.length >= count) break;
  }
  if (out.length === 0) throw new YuanError('input', `test data ${dir} has fewer than ${seqLength + 1} tokens: no test window`);
  return out;
}

/**
 * Trains a model on a packed data folder: metrics lines (step, loss, lr, gradNorm, tokensPerSecond; validLoss every
 * `train.validEvery` steps), checkpoints every `train.checkpointEvery` steps and at the end, a loss plot, progress.
 * `resume` continues from the newest complete checkpoint in that folder with the same losses as an uninterrupted run.
 */
export async function runTraining(o: RunOptions): Promise<RunResult> {
  const backend = await initBackend(o.backend);
  const tc = trainConfig(o.config);
  const lookup = attentionLookup(o.registry);
  const attention = lookup(o.config.attention.name);
  const index = readPackedIndex(o.data);
  checkData(index, o.config, o.data);
  const eod = tc.resetPositionIds ? index.special.eod : undefined;
  const trainSplit = PackedSplit.open(o.data, index, 'train');
  const makeTrainer = (model: YuanModel) => new Trainer(model, tc, o.steps, new BatchLoader(trainSplit, tc.seqLength, tc.microBatchSize, o.seed, eod));
  const validSplit = index.splits.valid.tokens > 0 ? PackedSplit.open(o.data, index, 'valid') : undefined;
  const validBatches = validSplit ? evalBatches(validSplit, tc.seqLength, tc.microBatchSize, tc.validBatches, eod) : [];
  validSplit?.close();
  const testBatches = o.test ? testBatchesOf(o.test, o.config, tc.seqLength, tc.microBatchSize, o.testBatches ?? 16, eod) : undefined;

  await mkdir(o.out, { recursive: true });
  const metricsFile = o.metrics ?? path.join(o.out, 'metrics.jsonl');
  let trainer: Trainer;
  if (o.resume) {
    const dir = resolveResumeDir(o.resume);
    trainer = (await loadTrainCheckpoint(dir, o.config, lookup, makeTrainer)).trainer;
    if (trainer.step >= o.steps) throw new YuanError('usage', `${dir} is at step ${trainer.step}; --steps ${o.steps} leaves nothing to train`);
    await truncateMetrics(metricsFile, trainer.step);
    o.io.err(`${o.label ?? ''}resumed from ${dir} at step ${trainer.step}`);
  } else {
    trainer = makeTrainer(YuanModel.init(o.config, attention, o.seed));
    await writeFile(metricsFile, '');
  }
  const log = (rec: Record<string, unknown>) => appendFile(metricsFile, `${JSON.stringify(rec)}\n`);
  const start = trainer.step;
  const every = Math.max(1, Math.round((o.steps - start) / 20));
  const progress = new Progress(o.io, o.steps, every);
  const history: StepMetrics[] = [];
  const valid: [number, number][] = [];
  let validLoss = Number.NaN;
  try {
    while (trainer.step < o.steps) {
      const m = await trainer.trainStep();
      history.push(m);
      await log({ step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokensPerSecond: Math.round(m.tokensPerSecond), seconds: m.seconds, tokens: m.tokens });
      const last = m.step === o.steps;
      if ((tc.validEvery > 0 && m.step % tc.validEvery === 0) || last) {
        validLoss = await trainer.evaluate(validBatches);
        if (Number.isFinite(validLoss)) {
          valid.push([m.step, validLoss]);
          await log({ step: m.step, validLoss });
        }
      }
      const vl = Number.isFinite(validLoss) ? ` valid ${validLoss.toFixed(4)}` : '';
      progress.update(m.step, `${o.label ?? ''}loss ${m.loss.toFixed(4)}${vl} lr ${m.lr.toExponential(2)} |g| ${m.gradNorm.toFixed(3)} ${Math.round(m.tokensPerSecond)} tok/s`);
      if ((tc.checkpointEvery > 0 && m.step % tc.checkpointEvery === 0) || last) {
        await saveTrainCheckpoint(o.out, trainer, o.seed, tc.keepCheckpoints);
      }
    }
    const measured = history.length > 1 ? history.slice(1) : history;
    const seconds = measured.reduce((a, m) => a + m.seconds, 0);
    const testLoss = testBatches ? await trainer.evaluate(testBatches) : undefined;
    if (testLoss !== undefined) await log({ step: trainer.step, testLoss });
    const plot = await writeLossPlot(metricsFile, o.out, `${o.config.preset} · ${o.config.attention.name} · ${trainer.model.parameterCount.toLocaleString('en-US')} params`);
    progress.note(`${o.label ?? ''}wrote ${plot}, metrics ${metricsFile}, checkpoint in ${o.out}`);
    return {
      backend: backend.name,
      parameters: trainer.model.parameterCount,
      steps: trainer.step,
      finalLoss: history[history.length - 1].loss,
      validLoss,
      testLoss,
      secondsPerStep: seconds / measured.length,
      tokensPerSecond: measured.reduce((a, m) => a + m.tokens, 0) / seconds,
      history,
      valid,
    };
  } catch (e) {
    if (e instanceof YuanError && e.code === 'nan') {
      const kept = listCheckpoints(o.out);
      throw new YuanError('nan', `${e.message}; ${kept.length ? `the last good checkpoint is ${kept[kept.length - 1]}` : 'no checkpoint was written yet'}`);
    }
    throw e;
  } finally {
    trainer.dispose();
    trainer.model.dispose();
    trainSplit.close();
  }
}
