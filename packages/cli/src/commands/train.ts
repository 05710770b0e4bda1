import { microbatchesPerRank, YuanError, type YuanConfig } from '@yuan/core';
import type { EngineFactory, RunResult } from '@yuan/model';
import { numberOption, requireString, type Command, type OptionSpec } from '../command.js';
import { BACKEND_OPTION, CONFIG_OPTIONS, loadConfig, loadRegistry, pluginModuleFile, withPluginFlags } from '../context.js';
import type { PluginRegistry } from '@yuan/core';
import type { ProcessGroup, ZeroStage } from '@yuan/parallel-zero';
import type { RankPayload } from '../training/data-parallel.js';
import { ADAPTER_TRAIN_OPTIONS, ADAPTER_TRAIN_USAGE, adapterRequested, trainAdapter } from '../training/adapter.js';

/** What `yuan train --json` prints (and what rank 0 of a multi-process run hands back). */
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
  return { steps: r.steps, trainedSteps: r.history.length, parameters: r.parameters, loss: r.finalLoss, validLoss: Number.isFinite(r.validLoss) ? r.validLoss : null, secondsPerStep: r.secondsPerStep, tokensPerSecond: r.tokensPerSecond, out };
}

/** `--microbatches M` (micro-batches per optimizer step for the whole job) as `train.gradAccumulation`. */
function withMicrobatches(config: YuanConfig, values: Record<string, unknown>): YuanConfig {
  if (values.microbatches === undefined) return config;
  const m = numberOption(values, 'microbatches', 1, { int: true, min: 1 });
  return { ...config, train: { ...((config.train as object | undefined) ?? {}), gradAccumulation: m } };
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

/**
 * The engine the pipeline flags ask for: without `--pp` (or with `--pp 1`) the single-process trainer; with `--pp P`
 * the pipeline engine, its layers per stage from the registry's partitioner (`uniform`, `parameters`, `memory`) or
 * explicit blocks (`2,2,3,3`, `2x10,3x20`), its schedule from the registry (`1f1b`, `gpipe`). One-line usage errors;
 * a note when M < P (the pipeline never fills). With `rank` this process (or thread) is one rank of a P × D grid over
 * `rank.world` and runs one stage (`pipelineRankEngine`; `yuan train --pp P [--dp D] --transport tcp`, or under
 * `yuan launch` / srun); without it one process runs all P stages on worker threads (`pipelineEngine`).
 */
export async function engineFromFlags(
  values: Record<string, unknown>,
  config: YuanConfig,
  registry: PluginRegistry,
  note: (text: string) => void,
  rank?: { world: ProcessGroup; dp: number; zero: ZeroStage },
): Promise<EngineFactory> {
  const pp = numberOption(values, 'pp', 1, { int: true, min: 1 });
  const m = (config.train as { gradAccumulation?: number } | undefined)?.gradAccumulation ?? 1;
  const schedule = (values.schedule as string | undefined) ?? '1f1b';
  if (!registry.has('schedule', schedule)) throw new YuanError('usage', `unknown schedule "${schedule}" (schedules: ${registry.names('schedule').join(', ')})`);
  const recompute = (values.recompute as string | undefined) ?? 'full';
  if (recompute !== 'full' && recompute !== 'stage') {
    throw new YuanError('usage', `--recompute "${recompute}" is not full or stage (TensorFlow.js keeps no autodiff tape across calls, so Megatron's none/block recompute cannot be built)`);
  }
  // the model (and TensorFlow.js) load only when a run starts, so `yuan train --help` stays fast
  const { attentionLookup, modelParameters, singleProcessEngine } = await import('@yuan/model');
  if (pp === 1) return singleProcessEngine;
  if (pp > config.model.numLayers) throw new YuanError('usage', `--pp ${pp} has more stages than the model's ${config.model.numLayers} layers`);
  const { pipelineEngine, pipelineRankEngine, planPipeline } = await import('@yuan/parallel-pipeline');
  const attention = attentionLookup(registry)(config.attention.name);
  const train = config.train as { microBatchSize?: number; seqLength?: number } | undefined;
  const spec = (values.partition as string | undefined) ?? 'uniform';
  const plan = planPipeline({
    model: config.model,
    parameters: modelParameters(config, attention),
    attention: config.attention,
    stages: pp,
    microbatches: m,
    microBatchSize: train?.microBatchSize ?? 8,
    seqLength: train?.seqLength ?? 128,
    partition: /^[\dx,\s]+$/.test(spec) ? spec.trim() : spec,
    schedule,
    recompute,
    registry,
  });
  if (m < pp) note(`note: --microbatches ${m} < --pp ${pp}: the pipeline never fills (bubble ${(((pp - 1) / (m + pp - 1)) * 100).toFixed(0)}% of each step)`);
  if (rank) return pipelineRankEngine({ world: rank.world, stages: pp, dataParallel: rank.dp, microbatches: m, schedule, registry, partition: plan.blocks, recompute, zero: rank.zero });
  // the stage workers import the attention plugin's module themselves (a plugin object cannot cross threads)
  const plugins = [pluginModuleFile(registry, 'attention', config.attention.name)];
  return pipelineEngine({ stages: pp, microbatches: m, schedule, registry, partition: plan.blocks, recompute, plugins });
}

/** `yuan train`: pretrain or fine-tune a model on a packed data folder, with checkpoints, metrics and a loss plot. */
export const trainCommand: Command = {
  path: ['train'],
  summary: 'train a model on a packed data folder (checkpoints, metrics, loss.svg; --resume continues a run; --pp P pipeline, --dp D data parallelism with ZeRO)',
  usage:
    'yuan train --preset NAME [--config F] [--set k=v ...] --data DIR|PREFIX --steps N --out DIR [--eod-id N] [--metrics FILE.jsonl] [--resume DIR] [--seed S] [--backend NAME]\n' +
    '  [--microbatches M] [--pp P --schedule 1f1b|gpipe --partition uniform|parameters|memory|BLOCKS (2,2,3,3 or 2x10,3x20) --recompute full|stage]\n' +
    '  [--dp D --zero 0|1|2 [--transport threads|tcp] [--timeout SECONDS]]\n' +
    '  --microbatches M: micro-batches per optimizer step for the whole job (global batch = M × train.microBatchSize sequences;\n' +
    '  sets train.gradAccumulation, and wins over a --set of it);\n' +
    '  --dp D: D data-parallel ranks, each taking M/D of them (worker threads, or local processes over TCP; under yuan launch,\n' +
    '  srun or a Kubernetes indexed Job each process is one rank); --zero 0 all-reduce, 1 sharded optimizer, 2 sharded gradients too;\n' +
    '  --pp P alone runs the P stages on worker threads of this process; with --dp, --transport or under yuan launch/srun every\n' +
    '  rank (process or thread) runs one stage of a P × D grid, WORLD_SIZE = P × D (Megatron layout: stage s = ranks s·D … s·D+D-1);\n' +
    '  --timeout SECONDS: how long a rank waits for a silent peer before failing, naming it (default 60).\n' +
    '  --eod-id N: the id that ends each document (positions restart after it; sets train.eodId); default the <eod> of the\n' +
    '  data\'s index.json; a Megatron PREFIX with no index.json beside it needs it. Token ids are checked against the vocabulary first.\n' +
    '  train.* settings (--set train.lr=3e-4): seqLength, microBatchSize, gradAccumulation, lr, minLr, warmupSteps, decaySteps,\n' +
    '  beta1, beta2, eps, weightDecay, gradClip, resetPositionIds, eodId, validEvery, validBatches, checkpointEvery, keepCheckpoints\n' +
    ADAPTER_TRAIN_USAGE,
  options: {
    ...CONFIG_OPTIONS,
    ...BACKEND_OPTION,
    ...EOD_ID_OPTION,
    data: { type: 'string' },
    steps: { type: 'string' },
    out: { type: 'string' },
    metrics: { type: 'string' },
    resume: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    microbatches: { type: 'string' },
    pp: { type: 'string' },
    schedule: { type: 'string' },
    partition: { type: 'string' },
    recompute: { type: 'string' },
    dp: { type: 'string' },
    zero: { type: 'string' },
    transport: { type: 'string' },
    timeout: { type: 'string' },
    ...ADAPTER_TRAIN_OPTIONS,
  },
  async run(values, _pos, io) {
    if (adapterRequested(values)) return trainAdapter(values, io, trainCommand);
    const data = requireString(values, 'data', trainCommand);
    const out = requireString(values, 'out', trainCommand);
    if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${trainCommand.usage}`);
    const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
    const config = withEodId(withMicrobatches(withPluginFlags(loadConfig(values, 'tiny-lfa'), values), values), values);
    const parallel = ['dp', 'zero', 'transport', 'timeout'].filter((f) => values[f] !== undefined);
    const { launchedAsRank, trainDataParallel } = await import('../training/data-parallel.js');
    // flags of a parallel layout that was not asked for are errors, not silently ignored
    const pipelineFlags = ['partition', 'schedule', 'recompute'].filter((f) => values[f] !== undefined);
    if (pipelineFlags.length && numberOption(values, 'pp', 1, { int: true, min: 1 }) === 1) {
      throw new YuanError('usage', `--${pipelineFlags[0]} applies to a pipeline: add --pp P (P > 1)`);
    }
    const pp = numberOption(values, 'pp', 1, { int: true, min: 1 });
    const dataParallelFlags = ['zero', 'transport', 'timeout'].filter((f) => values[f] !== undefined && !(pp > 1 && f !== 'zero'));
    if (dataParallelFlags.length && values.dp === undefined && !launchedAsRank()) {
      const flag = dataParallelFlags[0];
      const add = flag === 'zero' ? 'add --dp D' : 'add --dp D or --pp P';
      throw new YuanError('usage', `--${flag} applies to ${flag === 'zero' ? 'data parallelism' : 'parallel runs'}: ${add} (or start the ranks with yuan launch, srun or an indexed Job)`);
    }
    let summary: TrainSummary;
    if (parallel.length || launchedAsRank()) {
      const { rankFromEnvironment } = await import('@yuan/parallel-zero');
      const world = launchedAsRank() ? rankFromEnvironment().worldSize : undefined;
      // a launched world is P × D ranks (D = WORLD_SIZE / P when --dp is left out); the same one-line error on every rank
      if (world !== undefined && values.dp === undefined && world % pp !== 0) {
        throw new YuanError('usage', `the world has ${world} ranks, not a multiple of --pp ${pp}: WORLD_SIZE must be P × D`);
      }
      const dp = numberOption(values, 'dp', world === undefined ? 1 : world / pp, { int: true, min: 1 });
      if (world !== undefined && values.dp !== undefined && world !== pp * dp) {
        throw new YuanError(
          'usage',
          pp > 1
            ? `the world has ${world} ranks but --pp ${pp} × --dp ${dp} needs ${pp * dp}: WORLD_SIZE must be P × D`
            : `the world has ${world} ranks but --dp is ${dp}: start as many ranks as --dp (or leave --dp out)`,
        );
      }
      const m = (config.train as { gradAccumulation?: number } | undefined)?.gradAccumulation ?? 1;
      microbatchesPerRank(m, dp, values.dp === undefined ? `the world's ${dp} data-parallel ranks (WORLD_SIZE / --pp)` : `--dp ${dp}`);
      const zero = numberOption(values, 'zero', 0, { int: true, min: 0 });
      if (zero > 2) throw new YuanError('usage', `--zero ${zero} must be 0, 1 or 2`);
      const transport = (values.transport as string | undefined) ?? 'threads';
      if (transport !== 'threads' && transport !== 'tcp') throw new YuanError('usage', `--transport "${transport}" must be threads or tcp`);
      const payload: RankPayload = {
        config,
        data,
        steps,
        out,
        seed,
        zero: zero as 0 | 1 | 2,
        dp,
        metrics: values.metrics as string | undefined,
        resume: values.resume as string | undefined,
        backend: values.backend as string | undefined,
        timeoutSeconds: numberOption(values, 'timeout', 60, { min: 0.1 }),
      };
      if (pp > 1) {
        // P × D ranks, each running one stage (Megatron's layout: data-parallel groups inside each stage)
        const pick = (k: string) => values[k] as string | undefined;
        payload.pipeline = { pp: pick('pp'), schedule: pick('schedule'), partition: pick('partition'), recompute: pick('recompute') };
      }
      const argv = process.argv.slice(2);
      const r = await trainDataParallel(io, payload, transport, argv);
      summary = 'loss' in r ? (r as unknown as TrainSummary) : summaryOf(r, out);
      if (launchedAsRank() && Number(process.env.RANK ?? process.env.SLURM_PROCID ?? process.env.JOB_COMPLETION_INDEX ?? 0) !== 0) return;
    } else {
      const registry = await loadRegistry({}, config);
      const engine = await engineFromFlags(values, config, registry, (t) => io.err(t));
      const { trainWithProgress } = await import('../training/run.js');
      const { attentionLookup } = await import('@yuan/model');
      const r = await trainWithProgress(io, {
        config,
        engine,
        lookup: attentionLookup(registry),
        data,
        steps,
        out,
        seed,
        metrics: values.metrics as string | undefined,
        resume: values.resume as string | undefined,
        backend: values.backend as string | undefined,
      });
      summary = summaryOf(r, out);
    }
    io.out(
      values.json
        ? JSON.stringify(summary)
        : `trained ${summary.trainedSteps === summary.steps ? `${summary.steps} steps` : `steps ${summary.steps - summary.trainedSteps + 1}–${summary.steps} (${summary.trainedSteps} after the resume)`} of ${summary.parameters.toLocaleString('en-US')} parameters: loss ${summary.loss.toFixed(4)}, valid ${summary.validLoss === null ? 'n/a' : summary.validLoss.toFixed(4)}, ${summary.tokensPerSecond.toFixed(0)} tokens/s; output in ${out}`,
    );
  },
};
