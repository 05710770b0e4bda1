import { YuanError, type YuanConfig } from '@yuan/core';
import { singleProcessEngine, type EngineFactory } from '@yuan/model';
import { parsePartition, pipelineEngine, SCHEDULES, type Recompute, type ScheduleName } from '@yuan/parallel-pipeline';
import { numberOption, requireString, type Command } from '../command.js';
import { attentionLookup, BACKEND_OPTION, buildRegistry, CONFIG_OPTIONS, loadConfig } from '../context.js';
import { trainWithProgress } from '../training/run.js';

/**
 * The engine the pipeline flags ask for: without `--pp` (or with `--pp 1`) the single-process trainer with
 * `--microbatches` as its gradient accumulation; with `--pp P` > 1 the pipeline engine. One-line usage errors for a
 * bad value; a note through `note` when M < P (the pipeline never fills).
 */
export function engineFromFlags(values: Record<string, unknown>, config: YuanConfig, note: (text: string) => void): { engine: EngineFactory; config: YuanConfig } {
  const pp = numberOption(values, 'pp', 1, { int: true, min: 1 });
  const gradAccumulation = (config.train as { gradAccumulation?: number } | undefined)?.gradAccumulation ?? 1;
  if (values.microbatches !== undefined && !(Number.isInteger(Number(values.microbatches)) && Number(values.microbatches) >= 1)) {
    throw new YuanError('usage', `--microbatches must be at least 1, got ${JSON.stringify(values.microbatches)}`);
  }
  const m = numberOption(values, 'microbatches', gradAccumulation, { int: true, min: 1 });
  const schedule = (values.schedule as string | undefined) ?? '1f1b';
  if (!(SCHEDULES as readonly string[]).includes(schedule)) throw new YuanError('usage', `unknown schedule "${schedule}" (schedules: ${SCHEDULES.join(', ')})`);
  const recompute = (values.recompute as string | undefined) ?? 'full';
  if (recompute !== 'full' && recompute !== 'stage') throw new YuanError('usage', `unknown --recompute "${recompute}" (full, stage)`);
  const partition = parsePartition((values.partition as string | undefined) ?? 'uniform', pp, config.model.numLayers);
  const withM = { ...config, train: { ...(config.train ?? {}), gradAccumulation: m } } as YuanConfig;
  if (pp === 1) return { engine: singleProcessEngine, config: withM };
  if (m < pp) note(`note: --microbatches ${m} < --pp ${pp}: the pipeline never fills (bubble ${((pp - 1) / (m + pp - 1) * 100).toFixed(0)}% of each step)`);
  // the stage workers import the attention plugins themselves: pass the modules that hold the built-in ones
  const plugins = ['@yuan/attention-lfa', '@yuan/attention-lpa'].map((p) => import.meta.resolve(p));
  return { engine: pipelineEngine({ stages: pp, microbatches: m, schedule: schedule as ScheduleName, partition, recompute: recompute as Recompute, plugins }), config: withM };
}

/** `yuan train`: pretrain or fine-tune a model on a packed data folder, with checkpoints, metrics and a loss plot. */
export const trainCommand: Command = {
  path: ['train'],
  summary: 'train a model on a packed data folder (checkpoints, metrics, loss.svg; --resume continues a run)',
  usage:
    'yuan train --preset NAME [--config F] [--set k=v ...] --data DIR --steps N --out DIR [--metrics FILE.jsonl] [--resume DIR] [--seed S] [--backend NAME]\n' +
    '  [--pp P --microbatches M --schedule 1f1b|gpipe --partition uniform|BLOCKS (2,2,3,3 or 2x10,3x20) --recompute full|stage]\n' +
    '  (--microbatches: micro-batches per optimizer step, global batch M × train.microBatchSize; with --pp 1 it is train.gradAccumulation)\n' +
    '  train.* settings (--set train.lr=3e-4): seqLength, microBatchSize, gradAccumulation, lr, minLr, warmupSteps, decaySteps,\n' +
    '  beta1, beta2, eps, weightDecay, gradClip, resetPositionIds, validEvery, validBatches, checkpointEvery, keepCheckpoints',
  options: {
    ...CONFIG_OPTIONS,
    ...BACKEND_OPTION,
    data: { type: 'string' },
    steps: { type: 'string' },
    out: { type: 'string' },
    metrics: { type: 'string' },
    resume: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    pp: { type: 'string' },
    microbatches: { type: 'string' },
    schedule: { type: 'string' },
    partition: { type: 'string' },
    recompute: { type: 'string' },
  },
  async run(values, _pos, io) {
    const data = requireString(values, 'data', trainCommand);
    const out = requireString(values, 'out', trainCommand);
    if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${trainCommand.usage}`);
    const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
    const { engine, config } = engineFromFlags(values, loadConfig(values, 'tiny-lfa'), (t) => io.err(t));
    const r = await trainWithProgress(io, {
      config,
      engine,
      lookup: attentionLookup(buildRegistry()),
      data,
      steps,
      out,
      seed,
      metrics: values.metrics as string | undefined,
      resume: values.resume as string | undefined,
      backend: values.backend as string | undefined,
    });
    const summary = { steps: r.steps, parameters: r.parameters, loss: r.finalLoss, validLoss: Number.isFinite(r.validLoss) ? r.validLoss : null, secondsPerStep: r.secondsPerStep, tokensPerSecond: r.tokensPerSecond, out };
    io.out(values.json ? JSON.stringify(summary) : `trained ${r.steps} steps of ${r.parameters.toLocaleString('en-US')} parameters: loss ${r.finalLoss.toFixed(4)}, valid ${Number.isFinite(r.validLoss) ? r.validLoss.toFixed(4) : 'n/a'}, ${r.tokensPerSecond.toFixed(0)} tokens/s; output in ${out}`);
  },
};
