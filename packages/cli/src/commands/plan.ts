import {
  countParameters,
  resolveConfig,
  YuanError,
  type AttentionDescription,
  type JsonObject,
  type YuanConfig,
} from '@yuan/core';
import {
  getSchedule,
  parallelLayout,
  planPipeline,
  planSchedules,
  planTime,
  type PassCosts,
  type PipelinePlan,
  type ScheduleChoice,
  type TimePlan,
} from '@yuan/plan';
import { numberOption, type Command } from '../command.js';
import { CONFIG_OPTIONS, loadConfig, loadRegistry } from '../context.js';
import { PARALLEL_OPTIONS, withParallelFlags } from '../parallel-flags.js';

const GiB = 2 ** 30;

const SHAPE_FLAGS: Record<string, string> = {
  layers: 'numLayers',
  hidden: 'hiddenSize',
  ffn: 'ffnSize',
  heads: 'numHeads',
  vocab: 'vocabSize',
};

/** The config of --preset/--config/--set with --layers/--hidden/--ffn/--heads/--vocab/--attention over it. */
async function planConfig(values: Record<string, unknown>): Promise<YuanConfig> {
  const base = await loadConfig(values);
  const model: JsonObject = {};
  for (const [flag, field] of Object.entries(SHAPE_FLAGS)) {
    if (values[flag] !== undefined) model[field] = numberOption(values, flag, 0, { int: true, min: 1 });
  }
  const layer: JsonObject = { model };
  if (values.attention !== undefined) layer.attention = { name: values.attention as string, options: {} };
  return resolveConfig(base as unknown as JsonObject, layer);
}

const gib = (b: number) => (b / GiB).toFixed(2);

/** The built-in packages' entries that describe their attention plugins (all but `create`) without TensorFlow.js. */
const DESCRIBE_ENTRIES = [
  '@yuan/model/describe',
  '@yuan/attention-lfa/describe',
  '@yuan/attention-lpa/describe',
  '@yuan/attention-family/describe',
];

/**
 * The configured attention plugin's description for `--time`: a built-in one from the `describe` entries, so the
 * step-time model loads no TensorFlow.js; any other from the run's registry (its plugin module loads tensor code).
 */
async function describedAttention(
  values: Record<string, unknown>,
  config: YuanConfig,
): Promise<AttentionDescription<unknown>> {
  const name = config.attention.name;
  for (const spec of DESCRIBE_ENTRIES) {
    const found = Object.values(await import(spec)).find(
      (v) => (v as { kind?: unknown }).kind === 'attention' && (v as { name?: unknown }).name === name,
    );
    if (found) return found as AttentionDescription<unknown>;
  }
  return (await loadRegistry(values, config)).get('attention', name) as AttentionDescription<unknown>;
}

function planTable(plan: PipelinePlan, config: YuanConfig, bubbleFormula: string | undefined): string[] {
  const rows = plan.stages.map((s) => [
    String(s.stage),
    String(s.layers),
    `${s.firstLayer}-${s.firstLayer + s.layers - 1}`,
    s.parameters.toLocaleString('en-US'),
    gib(s.weightBytes + s.gradientBytes + s.optimizerBytes),
    Number.isInteger(s.inFlight) ? String(s.inFlight) : s.inFlight.toFixed(1),
    gib(s.checkpointBytes),
    gib(s.workingBytes),
    gib(s.activationBytes),
    gib(s.peakBytes),
    s.binding ? '<- binds' : '',
  ]);
  const head = [
    'stage',
    'layers',
    'range',
    'parameters',
    'w+g+opt GiB',
    'in-flight',
    'kept GiB',
    'working GiB',
    'activ. GiB',
    'peak GiB',
    '',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const m = config.model;
  const out = [
    `plan: ${config.preset}, ${m.numLayers} layers, hidden ${m.hiddenSize}, heads ${m.numHeads}, ffn ${m.ffnSize}, vocab ${m.vocabSize}, attention ${config.attention.name}; ${plan.modelParameters.toLocaleString('en-US')} parameters`,
    `pipeline: P = ${plan.stages.length}, D = ${plan.dataParallel}, M = ${plan.microbatches} (${plan.microbatchesPerRank} per pipeline), B = ${plan.microBatchSize}, S = ${plan.seqLength}, schedule ${plan.schedule}, recompute ${plan.recompute}, ${plan.precision}, ZeRO-${plan.zero}`,
    `partition ${plan.partition}: ${plan.blocks.join(',')}`,
    fmt(head),
    ...rows.map(fmt),
    `binding stage ${plan.bindingStage}: peak ${gib(plan.peakBytes)} GiB; bubble (simulated${bubbleFormula ? `, ${bubbleFormula}` : ''}) = ${(100 * plan.bubbleFraction).toFixed(1)}%`,
  ];
  if (plan.memoryBytes !== undefined) {
    out.push(
      plan.fits
        ? `fits in ${gib(plan.memoryBytes)} GiB per device`
        : `does NOT fit in ${gib(plan.memoryBytes)} GiB: stage ${plan.bindingStage} needs ${gib(plan.peakBytes)} GiB`,
    );
  }
  out.push(...plan.notes.map((n) => `note: ${n}`));
  return out;
}

/**
 * The default pass times of `--schedule auto`: F = 1, W = 1, and I = 2 under full or stage recompute (the layer forward
 * again, then dX), I = 1 under none or selective (dX from the kept tape; selective's recomputed scores are small).
 */
const modelled = (recompute: string): PassCosts => ({
  forward: 1,
  backwardInput: recompute === 'full' || recompute === 'stage' ? 2 : 1,
  backwardWeight: 1,
});

function parsePassTimes(v: unknown, recompute: string): PassCosts {
  if (v === undefined) return modelled(recompute);
  const parts = String(v).split(',').map(Number);
  if (parts.length !== 3 || parts.some((x) => !(Number.isFinite(x) && x > 0)))
    throw new YuanError('usage', `--pass-times "${String(v)}" is not three numbers > 0 (F,I,W)`);
  return { forward: parts[0], backwardInput: parts[1], backwardWeight: parts[2] };
}

function choiceTable(c: ScheduleChoice, costs: PassCosts, memory: number | undefined, overlap: boolean): string[] {
  const rows = c.rows.map((r) => [
    r.schedule,
    r.error ? '-' : `${(100 * r.bubbleFraction!).toFixed(1)}%`,
    r.error ? '-' : r.makespan!.toFixed(2),
    r.error ? '-' : `${(100 * r.overlappedBubbleFraction!).toFixed(1)}%`,
    r.error ? '-' : r.overlappedPeriod!.toFixed(2),
    r.error ? '-' : gib(r.peakBytes!),
    r.schedule === c.choice ? '<- chosen' : '',
    r.error ? `cannot: ${r.error}` : r.fits ? 'fits' : 'does not fit',
  ]);
  const head = ['schedule', 'bubble', 'step', 'overlapped', 'period', 'peak GiB', '', 'memory'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    r
      .map((x, i) => (i >= 6 ? x.padEnd(widths[i]) : i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `schedules (simulated with F = ${costs.forward}, I = ${costs.backwardInput}, W = ${costs.backwardWeight} per stage${memory === undefined ? '' : `; memory cap ${gib(memory)} GiB`}; overlapped: steps back to back under train.postValidate, bubble and period):`,
    fmt(head),
    ...rows.map(fmt),
    c.choice
      ? `choice: ${c.choice} (the shortest simulated ${overlap ? 'period of overlapped steps (train.postValidate)' : 'step'} that fits)`
      : 'choice: none — no schedule fits the memory cap',
  ];
}

function timeTable(t: TimePlan): string[] {
  const out: string[] = [];
  for (const m of [t.method1, t.yuan]) {
    out.push(
      `${m.method} (TP ${m.tensorParallel}, PP ${m.pipeline}, DP ${m.dataParallel}, A = ${m.accumulation}): ${m.total.toFixed(2)} s per step`,
    );
    for (const term of m.terms)
      out.push(
        `  ${term.name} ${term.what.padEnd(44)} ${term.seconds.toFixed(3).padStart(10)} s  ${(100 * term.share).toFixed(2).padStart(6)}%`,
      );
  }
  out.push(...t.notes.map((n) => `note: ${n}`));
  return out;
}

/** `yuan plan`: the per-stage memory plan of a pipeline (and with --time the paper's step-time model). */
export const planCommand: Command = {
  path: ['plan'],
  summary: "plan a pipeline: layers, parameters, memory per stage, bubble; --time: the paper's step-time model",
  usage:
    'yuan plan (--preset NAME | --layers L --hidden H --ffn F --heads A --vocab V [--attention NAME]) [--config F] [--set k=v ...]\n' +
    '  [--pp P] [--dp D] [--microbatches M] [--micro-batch-size B] [--seq S] [--partition uniform|parameters|memory|v-shape|BLOCKS]\n' +
    '  [--schedule 1f1b|gpipe|interleaved-1f1b|zb-h1|zb-h2|zb-v|zb-v-auto|auto] [--pass-times F,I,W] [--recompute none|selective|full|stage] [--precision fp32|bf16] [--zero 0|1|2] [--kernels fused|composed] [--memory GiB] [--json]\n' +
    '  yuan plan --time --preset NAME [--chips N] [--pp P] [--tp T] [--microbatches M] [--micro-batch-size B] [--seq S]\n' +
    '  [--p2p-bw GB/s] [--net-bw GB/s] [--nics N] [--flops TFLOP/s] [--json]\n' +
    "  --schedule auto prints every schedule's simulated bubble, step and peak memory and picks the fastest that fits --memory\n" +
    '  (with train.postValidate, e.g. --set train.postValidate=true, by the period of steps run back to back);\n' +
    '  --pass-times F,I,W gives measured per-stage pass times (default 1,1,1; 1,2,1 under full or stage recompute, which\n' +
    '  redoes the forward in I).\n' +
    "  The layout is the config's parallel section (yuan2-51b and yuan2-102b carry their released ones); the layout flags\n" +
    '  override its fields. M defaults to parallel.microbatches, else train.gradAccumulation, else P; --chips to P × D.',
  options: {
    ...CONFIG_OPTIONS,
    ...PARALLEL_OPTIONS,
    layers: { type: 'string' },
    hidden: { type: 'string' },
    ffn: { type: 'string' },
    heads: { type: 'string' },
    vocab: { type: 'string' },
    attention: { type: 'string' },
    'micro-batch-size': { type: 'string' },
    seq: { type: 'string' },
    precision: { type: 'string' },
    kernels: { type: 'string' },
    memory: { type: 'string' },
    'pass-times': { type: 'string' },
    json: { type: 'boolean' },
    time: { type: 'boolean' },
    chips: { type: 'string' },
    tp: { type: 'string' },
    'p2p-bw': { type: 'string' },
    'net-bw': { type: 'string' },
    nics: { type: 'string' },
    flops: { type: 'string' },
  },
  async run(values, _pos, io) {
    // --microbatches below 1 must be its own one-line error, not a generic number error
    if (values.microbatches !== undefined && Number(values.microbatches) < 1) {
      throw new YuanError('usage', `--microbatches ${values.microbatches}: need at least 1 micro-batch per step`);
    }
    const flagged = await withParallelFlags(await planConfig(values), values);
    // a plan without a step's micro-batches anywhere assumes M = P (the pipeline just fills)
    const section = (flagged.config.parallel ?? {}) as { pp?: unknown; microbatches?: unknown };
    const accumulation = (flagged.config.train as { gradAccumulation?: unknown } | undefined)?.gradAccumulation;
    const config =
      section.microbatches === undefined && accumulation === undefined
        ? { ...flagged.config, parallel: { ...section, microbatches: typeof section.pp === 'number' ? section.pp : 1 } }
        : flagged.config;
    const layout = parallelLayout(config, { naming: flagged.naming, rejectIgnored: false });
    const m = config.model;
    const { pp, microbatches } = layout;
    const train = (config.train ?? {}) as { microBatchSize?: number; seqLength?: number };
    const microBatchSize = numberOption(values, 'micro-batch-size', train.microBatchSize ?? 1, { int: true, min: 1 });
    const seqLength = numberOption(values, 'seq', train.seqLength ?? m.maxPositions, { int: true, min: 1 });
    if (values.time) {
      const attention = await describedAttention(values, config);
      const { modelParameters } = await import('@yuan/model/describe');
      const t = planTime({
        layers: m.numLayers,
        hidden: m.hiddenSize,
        heads: m.numHeads,
        ffn: m.ffnSize,
        seqLength,
        parameters: countParameters(modelParameters(config, attention)),
        attention: { plugin: attention, options: config.attention.options },
        microBatchSize,
        microbatches,
        chips: numberOption(values, 'chips', pp * layout.dp, { int: true, min: 1 }),
        pipeline: pp,
        tensorParallel: numberOption(values, 'tp', 8, { int: true, min: 1 }),
        flops: numberOption(values, 'flops', 172.8, { min: 0 }) * 1e12,
        p2pBandwidth: numberOption(values, 'p2p-bw', 400, { min: 0 }) * 1e9,
        netBandwidth: numberOption(values, 'net-bw', 24.375, { min: 0 }) * 1e9,
        nics: numberOption(values, 'nics', 2, { min: 0 }),
      });
      io.out(values.json ? JSON.stringify(t, null, 2) : timeTable(t).join('\n'));
      return;
    }
    // the memory plan counts the model's parameters with the run's attention plugin: the model and TensorFlow.js load
    // here, so `yuan plan --help` and `--time` (a built-in attention's `describe` entry) load only the planner
    const registry = await loadRegistry(values, config);
    const { attentionLookup, modelParameters } = await import('@yuan/model');
    const attention = attentionLookup(registry)(config.attention.name);
    const kernels = (values.kernels as string | undefined) ?? 'fused';
    if (kernels !== 'fused' && kernels !== 'composed')
      throw new YuanError('usage', `--kernels "${kernels}" is not fused or composed`);
    const memory = values.memory === undefined ? undefined : numberOption(values, 'memory', 0, { min: 0 }) * GiB;
    const input = {
      model: m,
      parameters: modelParameters(config, attention),
      attention: { plugin: attention, options: config.attention.options },
      stages: pp,
      dataParallel: layout.dp,
      microbatches,
      microBatchSize,
      seqLength,
      partition: layout.partition,
      schedule: layout.schedule,
      recompute: layout.recompute,
      precision: values.precision as string | undefined,
      zero: layout.zero,
      memoryBytes: memory,
      fusedKernels: kernels === 'fused',
      registry,
      passCosts: parsePassTimes(values['pass-times'], layout.recompute),
      overlapSteps: (config.train as { postValidate?: unknown } | undefined)?.postValidate === true,
    };
    if (layout.schedule === 'auto') {
      const choice = planSchedules(input);
      if (values.json) {
        const rows = choice.rows.map(({ plan: _plan, ...r }) => r);
        io.out(JSON.stringify({ schedules: rows, choice: choice.choice ?? null, plan: choice.plan ?? null }, null, 2));
        return;
      }
      const lines = choiceTable(choice, input.passCosts, memory, input.overlapSteps);
      if (choice.plan) {
        for (const w of choice.plan.warnings) io.err(`warning: ${w}`);
        lines.push('', ...planTable(choice.plan, config, getSchedule(choice.plan.schedule, registry).bubbleFormula));
      }
      io.out(lines.join('\n'));
      return;
    }
    const plan = planPipeline(input);
    for (const w of plan.warnings) io.err(`warning: ${w}`);
    io.out(
      values.json
        ? JSON.stringify(plan, null, 2)
        : planTable(plan, config, getSchedule(plan.schedule, registry).bubbleFormula).join('\n'),
    );
  },
};
