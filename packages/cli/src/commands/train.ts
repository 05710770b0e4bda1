import { YuanError } from '@yuan/core';
import { numberOption, requireString, type Command } from '../command.js';
import { attentionLookup } from '@yuan/model';
import { BACKEND_OPTION, CONFIG_OPTIONS, loadConfig, loadRegistry, withPluginFlags } from '../context.js';
import { trainWithProgress } from '../training/run.js';

/** `yuan train`: pretrain or fine-tune a model on a packed data folder, with checkpoints, metrics and a loss plot. */
export const trainCommand: Command = {
  path: ['train'],
  summary: 'train a model on a packed data folder (checkpoints, metrics, loss.svg; --resume continues a run)',
  usage:
    'yuan train --preset NAME [--config F] [--set k=v ...] --data DIR --steps N --out DIR [--metrics FILE.jsonl] [--resume DIR] [--seed S] [--backend NAME]\n' +
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
  },
  async run(values, _pos, io) {
    const data = requireString(values, 'data', trainCommand);
    const out = requireString(values, 'out', trainCommand);
    if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${trainCommand.usage}`);
    const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
    const config = withPluginFlags(loadConfig(values, 'tiny-lfa'), values);
    const registry = await loadRegistry({}, config);
    const r = await trainWithProgress(io, {
      config,
      lookup: attentionLookup(registry),
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
