import { YuanError, type YuanConfig } from '@yuan/core';
import type { RunResult } from '@yuan/train';
import { numberOption, requireString, YUAN_VERSION, type Command, type OptionSpec } from '../command.js';
import {
  BACKEND_OPTION,
  CONFIG_OPTIONS,
  loadConfig,
  loadRegistry,
  registryModules,
  withPluginFlags,
} from '../context.js';
import { PARALLEL_OPTIONS, withParallelFlags } from '../parallel-flags.js';
import { ADAPTER_TRAIN_OPTIONS, ADAPTER_TRAIN_USAGE, adapterRequested, trainAdapter } from '../training/adapter.js';

/** What `yuan train --json` prints. */
interface TrainSummary {
  /** The step the run ended at. */
  steps: number;
  /** Steps this invocation trained (fewer than `steps` after --resume). */
  trainedSteps: number;
  parameters: number;
  loss: number;
  validLoss: number | null;
  secondsPerStep: number;
  tokensPerSecond: number;
  out: string;
}

function summaryOf(r: RunResult, out: string): TrainSummary {
  return {
    steps: r.steps,
    trainedSteps: r.history.length,
    parameters: r.parameters,
    loss: r.finalLoss,
    validLoss: Number.isFinite(r.validLoss) ? r.validLoss : null,
    secondsPerStep: r.secondsPerStep,
    tokensPerSecond: r.tokensPerSecond,
    out,
  };
}

/**
 * `--eod-id N` (the id that ends each document; positions restart after it) as `train.eodId`, winning over a `--set`
 * of it. Needed for a Megatron dataset with no index.json beside it; a non-integer or negative N is a usage error.
 */
export function withEodId(config: YuanConfig, values: Record<string, unknown>): YuanConfig {
  if (values['eod-id'] === undefined) return config;
  const eodId = numberOption(values, 'eod-id', 0, { int: true, min: 0 });
  return { ...config, train: { ...((config.train as object | undefined) ?? {}), eodId } };
}

/** The `--eod-id` option of the commands that train. */
export const EOD_ID_OPTION: OptionSpec = { 'eod-id': { type: 'string' } };

/** `yuan train`: pretrain or fine-tune a model on a packed data folder, with checkpoints, metrics and a loss plot. */
export const trainCommand: Command = {
  path: ['train'],
  summary:
    'train a model on a packed data folder (checkpoints, metrics, loss.svg; --resume continues a run; --pp P pipeline, --dp D data parallelism with ZeRO)',
  usage:
    'yuan train --preset NAME [--config F] [--set k=v ...] --data DIR|PREFIX --steps N --out DIR [--eod-id N] [--metrics FILE.jsonl] [--resume DIR] [--seed S] [--backend NAME]\n' +
    '  [--microbatches M] [--pp P --schedule 1f1b|gpipe|interleaved-1f1b|zb-h1|zb-h2|zb-v|zb-v-auto --partition uniform|parameters|memory|BLOCKS (2,2,3,3 or 2x10,3x20) --recompute none|selective|full|stage]\n' +
    '  [--dp D --zero 0|1|2 [--transport threads|tcp|NAME] [--timeout SECONDS]]\n' +
    '  --recompute (a pipeline, or --zero 2): none (default) keeps what each backward reads, no forward runs twice; selective\n' +
    "  recomputes the op-by-op attention scores; full keeps each layer's input and reruns it; stage keeps only a stage's input.\n" +
    "  The layout flags set the config's parallel section (parallel.pp, .dp, .zero, .partition, .schedule, .recompute, .transport,\n" +
    '  .microbatches; a preset such as tiny-pp2dp2 or yuan2-102b, a --config file or --set parallel.pp=2 set it too; flags win).\n' +
    '  --microbatches M: micro-batches per optimizer step for the whole job (global batch = M × train.microBatchSize sequences;\n' +
    '  train.gradAccumulation is the same M: give one of them);\n' +
    '  --dp D: D data-parallel ranks, each taking M/D of them (worker threads, or local processes over TCP; under yuan launch,\n' +
    '  srun or a Kubernetes indexed Job each process is one rank); --zero 0 all-reduce, 1 sharded optimizer, 2 sharded gradients too;\n' +
    '  --pp P alone runs the P stages on worker threads of this process; with --dp, --transport tcp or under yuan launch/srun every\n' +
    '  rank (process or thread) runs one stage of a P × D grid, WORLD_SIZE = P × D (Megatron layout: stage s = ranks s·D … s·D+D-1);\n' +
    '  --timeout SECONDS: how long a rank waits for a silent peer before failing, naming it (default 60).\n' +
    '  --eod-id N: the id that ends each document (positions restart after it; sets train.eodId); default the <eod> of the\n' +
    "  data's index.json; a Megatron PREFIX with no index.json beside it needs it. Token ids are checked against the vocabulary first.\n" +
    '  train.* settings (--set train.lr=3e-4): seqLength, microBatchSize, gradAccumulation, lr, minLr, warmupSteps, decaySteps,\n' +
    '  beta1, beta2, eps, weightDecay, gradClip, resetPositionIds, eodId, validEvery, validBatches, checkpointEvery, keepCheckpoints\n' +
    ADAPTER_TRAIN_USAGE,
  options: {
    ...CONFIG_OPTIONS,
    ...BACKEND_OPTION,
    ...EOD_ID_OPTION,
    ...PARALLEL_OPTIONS,
    data: { type: 'string' },
    steps: { type: 'string' },
    out: { type: 'string' },
    metrics: { type: 'string' },
    resume: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    timeout: { type: 'string' },
    ...ADAPTER_TRAIN_OPTIONS,
  },
  async run(values, _pos, io) {
    if (await adapterRequested(values)) return trainAdapter(values, io, trainCommand);
    if (values.weights !== undefined)
      throw new YuanError(
        'usage',
        `--weights ${String(values.weights)} is the frozen base's format of an adapter run: add --lora (or --lora-rank R)`,
      );
    const data = requireString(values, 'data', trainCommand);
    const out = requireString(values, 'out', trainCommand);
    if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${trainCommand.usage}`);
    const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
    const { config, naming } = await withParallelFlags(
      withEodId(withPluginFlags(await loadConfig(values, 'tiny-lfa'), values), values),
      values,
    );
    const timeoutSeconds = values.timeout === undefined ? undefined : numberOption(values, 'timeout', 60, { min: 0.1 });
    const registry = await loadRegistry({}, config);
    // the library runs every layout: one process, stage threads, P × D ranks it starts, or this process as a launched rank
    const [{ trainParallel }, { Progress }] = await Promise.all([
      import('@yuan/parallel-pipeline'),
      import('../training/progress.js'),
    ]);
    let progress: InstanceType<typeof Progress> | undefined;
    const r = await trainParallel({
      config,
      registry,
      modules: registryModules(registry),
      naming,
      timeoutSeconds,
      codeVersion: `yuan ${YUAN_VERSION}`,
      data,
      steps,
      out,
      seed,
      metrics: values.metrics as string | undefined,
      resume: values.resume as string | undefined,
      backend: values.backend as string | undefined,
      onStep(step, total, status) {
        progress ??= new Progress(io, total, Math.max(1, Math.round(total / 20)));
        progress.update(step, status);
      },
      onNote(text) {
        if (progress) progress.note(text);
        else io.err(text);
      },
    });
    if (r.rank !== 0) return; // in a launched job only rank 0 reports
    const summary = summaryOf(r, out);
    io.out(
      values.json
        ? JSON.stringify(summary)
        : `trained ${summary.trainedSteps === summary.steps ? `${summary.steps} steps` : `steps ${summary.steps - summary.trainedSteps + 1}–${summary.steps} (${summary.trainedSteps} after the resume)`} of ${summary.parameters.toLocaleString('en-US')} parameters: loss ${summary.loss.toFixed(4)}, valid ${summary.validLoss === null ? 'n/a' : summary.validLoss.toFixed(4)}, ${summary.tokensPerSecond.toFixed(0)} tokens/s; output in ${out}`,
    );
  },
};
