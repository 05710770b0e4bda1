import {
  attentionCoreActivation,
  microbatchesPerRank,
  YuanError,
  type AttentionDescription,
  type ParameterSpec,
  type PluginRegistry,
} from '@yuan/core';
import {
  attentionShape,
  embeddingActivation,
  headActivation,
  layerActivation,
  ropeTablesElements,
  sumTerms,
  type ActivationShape,
  type SegmentActivation,
} from './activation.js';
import { planRegistry } from './own.js';
import { groupParameters } from './parameters.js';
import { isBlocksSpec, parseBlocks, partitionLayers } from './partition.js';
import { lowerActions, type ScheduleActions } from './actions.js';
import type { PassCosts } from './instructions.js';
import { getSchedule, simulateSchedule, stepsAfter, type SimulationResult } from './schedule.js';

/**
 * What a stage keeps between a micro-batch's forward and its backward (Megatron's `--recompute-granularity`, plus
 * `stage`): `none` every tensor the backward reads (each layer's autodiff tape; no forward runs twice), `selective`
 * the same but the op-by-op attention core's score-sized tensors, recomputed in the backward (with the fused attention
 * kernel this is `none`), `full` every layer's input (one layer recomputed at a time), `stage` only the stage input
 * (the whole stage recomputed in one tape).
 */
export type Recompute = 'none' | 'selective' | 'full' | 'stage';
/** Training precision for the byte accounting: `fp32` (what TensorFlow.js runs) or `bf16` mixed (Megatron's). */
export type Precision = 'fp32' | 'bf16';

/** Everything `planPipeline` needs. Defaults are stated per field. */
export interface PipelinePlanInput {
  /** The model's shape (a resolved config's `model`). */
  model: { vocabSize: number; hiddenSize: number; numLayers: number; numHeads: number; ffnSize: number };
  /** The model's parameter list, `modelParameters(config, attention)` of @yuan/model, so counts agree with the model. */
  parameters: readonly ParameterSpec[];
  /**
   * The attention plugin (looked up by its name in the run's registry) and the config's options for it, merged here
   * over the plugin's defaults and validated by it. The plugin's `activation` gives the attention block's terms; a
   * plugin without one is a one-line error.
   */
  attention: PlannedAttention;
  /** Pipeline stages P ≥ 1. */
  stages: number;
  /** Data-parallel ranks D ≥ 1 (default 1); they split the step's micro-batches and, with ZeRO, the optimizer. */
  dataParallel?: number;
  /** Micro-batches per optimizer step for the whole job, M ≥ 1; each data-parallel rank runs M/D of them. */
  microbatches: number;
  /** Sequences per micro-batch B ≥ 1. */
  microBatchSize: number;
  /** Tokens per sequence S ≥ 1. */
  seqLength: number;
  /** A partitioner name (`uniform`, `parameters`, `memory`, a plugin) or explicit blocks. Default `uniform`. */
  partition?: string | readonly number[];
  /**
   * Schedule name (`1f1b`, `gpipe`, `interleaved-1f1b`, `zb-h1`, `zb-h2`, `zb-v`, a plugin). Default `1f1b`. `auto` is
   * `planSchedules`' choice, not a schedule: pass it there.
   */
  schedule?: string;
  /**
   * Per-stage pass times (measured or modelled, any unit) for the simulated bubble; default F = 1, I = W = 1 (a
   * backward twice a forward). A schedule with V virtual stages over P ranks runs each chunk in P/V of them.
   */
  passCosts?: PassCosts;
  /**
   * Whether steps overlap (the training config's `train.postValidate`: no global synchronisation between steps, the
   * zero-bubble paper's §5): `planSchedules` then chooses by the overlapped period instead of one step's time.
   */
  overlapSteps?: boolean;
  /** `none` (default), `selective`, `full` or `stage` (`Recompute`); Megatron's `block` is an error. */
  recompute?: string;
  /** Default `fp32`. */
  precision?: string;
  /** ZeRO stage over the data-parallel group: 0 replicated, 1 optimizer states sharded, 2 gradients too. Default 0. */
  zero?: number;
  /** Memory per device in bytes; when given the plan says whether every stage fits. */
  memoryBytes?: number;
  /** RMSNorm, SwiGLU and the attention core as fused kernels (the `native` backend). Default true. */
  fusedKernels?: boolean;
  /** Word embedding tied to the output projection (YUAN: yes), so the last stage (P > 1) holds a copy. Default true. */
  tiedEmbeddings?: boolean;
  /** Registry to look partitioners and schedules up in. Default: a registry of this package's own (`@yuan/plan`'s `plugins`). */
  registry?: PluginRegistry;
}

/**
 * An attention plugin (or its description without tensor code, such as `lfaDescription` of
 * `@yuan/attention-lfa/describe`) and the config's options for it, merged over its defaults and validated by the planner.
 */
export interface PlannedAttention {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  plugin: AttentionDescription<any>;
  options?: Record<string, unknown>;
}

/** The plugin's options: the given ones over its defaults, through its `validate`; a bad one is a one-line error. */
export function plannedOptions(attention: PlannedAttention): unknown {
  const { plugin } = attention;
  const merged = { ...(plugin.defaults as Record<string, unknown>), ...attention.options };
  try {
    return plugin.validate ? plugin.validate(merged) : merged;
  } catch (e) {
    throw new YuanError(
      'config',
      `invalid config: attention.options for "${plugin.name}": ${(e as Error).message.replace(/^invalid config: /, '')}`,
    );
  }
}

/** Per-parameter bytes of weights, gradients and optimizer states (Megatron's accounting, docs/distrib_optimizer.md). */
export interface BytesPerParameter {
  weight: number;
  gradient: number;
  optimizer: number;
  total: number;
}

/** One stage of the plan. All sizes in bytes. */
export interface StagePlan {
  stage: number;
  /** Layers this stage holds and the first one's index. */
  layers: number;
  firstLayer: number;
  /** Parameters held (embedding on the first stage; final norm and the tied head copy on the last). */
  parameters: number;
  weightBytes: number;
  /** Gradient state kept across a step: all the stage's gradients, or their 1/D shard under ZeRO 2. */
  gradientBytes: number;
  /**
   * The most not-yet-reduced gradients alive at once during a backward (fp32): the stage's whole set, except under ZeRO 2:
   * the layer-by-layer backward hands each group to the gradient space as it produces it — with one stage each layer's
   * (or the head's: final norm + tied embedding, or the embedding lookup's), with P > 1 each layer's (or the last
   * stage's final norm; the tied embedding is summed with the other end first and kept whole) — and two consecutive
   * groups are reduced at a time (the larger such pair); with `stage` recompute (P > 1) one backward produces the whole
   * stage's groups at once.
   * Held beside `gradientBytes`, not part of `peakBytes`'s sum (the working set already counts fresh gradients).
   */
  gradientInFlightBytes: number;
  optimizerBytes: number;
  /**
   * Micro-batches whose activations the stage holds at once under the schedule (simulated; with virtual stages in units
   * of the rank's layers, a pending weight backward counted twice under full recompute: it keeps each layer's output gradient).
   */
  inFlight: number;
  /** The virtual stages (model chunks) this rank holds, with their layers, when the schedule has more than one per rank. */
  chunks?: { stage: number; layers: number; firstLayer: number }[];
  /** Kept between forward and backward per in-flight micro-batch: the layers' tapes (`none`/`selective`), layer inputs (`full`) or the stage input (`stage`). */
  checkpointBytes: number;
  /** The largest backward working set (recomputed activations under `full`/`stage`, gradient buffers, fresh parameter gradients). */
  workingBytes: number;
  /** checkpointBytes + workingBytes. */
  activationBytes: number;
  /** weight + gradient + optimizer + activation bytes. */
  peakBytes: number;
  /** Whether this stage has the largest peak. */
  binding: boolean;
}

/** The memory plan of a pipeline. */
export interface PipelinePlan {
  stages: StagePlan[];
  /** Layers per stage. */
  blocks: number[];
  /** The stage with the largest peak (the first such). */
  bindingStage: number;
  /** Largest stage peak, bytes. */
  peakBytes: number;
  /**
   * The share of a step the busiest-idling rank idles (simulated with `passCosts`; 1F1B and GPipe with B = 2F:
   * (P − 1) / (M/D + P − 1)).
   */
  bubbleFraction: number;
  /** The simulated step time in the units of `passCosts` (compute only, free communication). */
  makespan: number;
  /**
   * Steps run back to back with no synchronisation between them, as under optimizer post-validation (`simulateSteps`,
   * zero-bubble §5): the step period in `passCosts` units and the busiest-idling rank's idle share of it.
   */
  overlapped: { period: number; bubbleFraction: number };
  /** Whether every stage's peak fits `memoryBytes` (only when given). */
  fits?: boolean;
  memoryBytes?: number;
  bytesPerParameter: BytesPerParameter;
  /** Parameters of the model (each counted once). */
  modelParameters: number;
  schedule: string;
  partition: string;
  recompute: Recompute;
  precision: Precision;
  zero: number;
  dataParallel: number;
  microbatches: number;
  /** Micro-batches each data-parallel rank pushes through the pipeline per step (M/D). */
  microbatchesPerRank: number;
  microBatchSize: number;
  seqLength: number;
  /** Input that is allowed but worth saying (M/D < P: the pipeline never fills). */
  warnings: string[];
  /** Assumptions the numbers rest on. */
  notes: string[];
}

/**
 * Bytes per parameter for weights, gradients and optimizer (Adam m, v) by precision and ZeRO stage over D ranks
 * (Megatron docs/distrib_optimizer.md): fp32 16 (4 + 4 + 8), ZeRO-1 8 + 8/D, ZeRO-2 4 + 12/D; bf16 mixed 18
 * (2 bf16 weight + 4 fp32 grad + 12 fp32 master, m, v), ZeRO-1 6 + 12/D (Megatron's distributed optimizer),
 * ZeRO-2 2 + 16/D.
 */
export function bytesPerParameter(precision: Precision, zero: number, dataParallel: number): BytesPerParameter {
  const d = dataParallel;
  const [weight, grad, opt] = precision === 'bf16' ? [2, 4, 12] : [4, 4, 8];
  const optimizer = zero >= 1 ? opt / d : opt;
  const gradient = zero >= 2 ? grad / d : grad;
  return { weight, gradient, optimizer, total: weight + gradient + optimizer };
}

function int(name: string, v: number | undefined, min: number): number {
  if (v === undefined || !Number.isInteger(v) || v < min)
    throw new YuanError('usage', `${name} must be an integer >= ${min} (got ${v})`);
  return v;
}

/** Parses the recompute setting (default `none`); an unknown one is a one-line error listing the four. */
export function parseRecompute(v: string | undefined): Recompute {
  const r = v ?? 'none';
  if (r === 'none' || r === 'selective' || r === 'full' || r === 'stage') return r;
  if (r === 'block')
    throw new YuanError(
      'usage',
      'recompute "block" (Megatron\'s recompute of the first N layers of a stage) is not offered: use none, selective, full or stage',
    );
  throw new YuanError('usage', `unknown recompute "${r}" (expected none, selective, full or stage)`);
}

/**
 * Plans a pipeline: layers per stage, parameters, weight/gradient/optimizer bytes, in-flight micro-batches, activation
 * and peak bytes per stage, the binding stage, the bubble fraction and (with `memoryBytes`) whether it fits. The
 * activation terms are `layerActivation` (around the attention plugin's own `activation` terms)/`headActivation`
 * (README "Activation memory"). One-line errors for bad input: an attention plugin without `activation`, bad options,
 * P, D, M, B, S below 1, M not divisible by D, P > L, bad blocks, unknown partition/schedule/recompute/
 * precision, ZeRO outside 0..2. M/D < P is allowed (a warning: the pipeline never fills).
 */
export function planPipeline(input: PipelinePlanInput): PipelinePlan {
  const m = input.model;
  const P = int('pipeline stages (--pp)', input.stages, 1);
  const D = int('data-parallel size (--dp)', input.dataParallel ?? 1, 1);
  const M = int('micro-batches (--microbatches)', input.microbatches, 1);
  const B = int('micro-batch size', input.microBatchSize, 1);
  const S = int('sequence length', input.seqLength, 1);
  const Mr = microbatchesPerRank(M, D);
  const recompute = parseRecompute(input.recompute);
  const precision = input.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16')
    throw new YuanError('usage', `unknown precision "${precision}" (expected fp32 or bf16)`);
  const zero = input.zero ?? 0;
  if (![0, 1, 2].includes(zero)) throw new YuanError('usage', `--zero ${zero} is not 0, 1 or 2`);
  const scheduleName = input.schedule ?? '1f1b';
  if (scheduleName === 'auto')
    throw new YuanError(
      'usage',
      'schedule "auto" is a choice among schedules: use planSchedules (yuan plan --schedule auto)',
    );
  const schedule = getSchedule(scheduleName, input.registry);
  const chunks = schedule.chunks ?? 1;
  const V = chunks * P;
  const pc = input.passCosts ?? { forward: 1, backwardInput: 1, backwardWeight: 1 };
  const actions: ScheduleActions | undefined = schedule.actions?.({ stages: P, microbatches: Mr, costs: pc });
  const placement = actions?.placement ?? Array.from({ length: V }, (_, v) => v % P);
  const programs = Array.from({ length: P }, (_, r) =>
    actions
      ? lowerActions(actions, r, input.tiedEmbeddings ?? true)
      : schedule.instructions({ stages: P, microbatches: Mr, stage: r, tiedEmbeddings: input.tiedEmbeddings }),
  );
  const tied = input.tiedEmbeddings ?? true;
  const L = m.numLayers;
  if (V > L && chunks > 1) {
    throw new YuanError(
      'usage',
      `schedule "${scheduleName}" needs ${V} virtual stages (${chunks} per rank) but the model has ${L} layers`,
    );
  }
  const groups = groupParameters(input.parameters, L);
  const headParams = groups.head + (tied && P > 1 ? groups.embedding : 0);
  const e = precision === 'bf16' ? 2 : 4;
  const bpp = bytesPerParameter(precision, zero, D);
  const shape: ActivationShape = {
    batch: B,
    seq: S,
    hidden: m.hiddenSize,
    heads: m.numHeads,
    ffn: m.ffnSize,
    vocab: m.vocabSize,
    fusedKernels: input.fusedKernels ?? true,
  };
  const plugin = input.attention?.plugin;
  if (!plugin) throw new YuanError('usage', 'planPipeline needs the attention plugin (input.attention.plugin)');
  if (!plugin.activation) {
    throw new YuanError(
      'usage',
      `attention plugin "${plugin.name}" does not describe its activation memory (no activation() descriptor), so the planner cannot count its layers`,
    );
  }
  const total = (a: SegmentActivation) => sumTerms(a.saved) + sumTerms(a.gradients);
  const layerTerms = layerActivation(shape, plugin.activation(attentionShape(shape), plannedOptions(input.attention)));
  const layerElems = total(layerTerms);
  const headTerms = headActivation(shape);
  const headElems = total(headTerms);
  const embedTerms = embeddingActivation(shape);
  const embedElems = total(embedTerms);
  // `selective` with the op-by-op attention core: its score-sized saved tensors are recomputed in the backward
  // instead of kept (the fused kernel keeps only O and the log-sum-exp already, so there it changes nothing)
  const fusedAttention = shape.fusedAttention ?? shape.fusedKernels;
  const coreSaved =
    recompute === 'selective' && !fusedAttention ? sumTerms(attentionCoreActivation(attentionShape(shape)).saved) : 0;
  const layerKept = sumTerms(layerTerms.saved) - coreSaved;
  const rope = ropeTablesElements(shape);
  const bsh = B * S * m.hiddenSize;
  const prefix = [0];
  for (const n of groups.layers) prefix.push(prefix[prefix.length - 1] + n);
  const maxLayer = (first: number, count: number) => Math.max(...groups.layers.slice(first, first + count));

  // equal chunks (the layout's memory partitioner needs the in-flight counts before the blocks exist)
  const per = (x: number) => (x * P) / V; // a chunk runs its share of the stage's time
  const flatCosts = {
    forwardCost: per(pc.forward),
    backwardInputCost: per(pc.backwardInput),
    backwardWeightCost: per(pc.backwardWeight),
    stageWeights: placement.map(() => 1 / chunks),
    pendingWeightFactor: recompute === 'full' ? 2 : 1,
  };
  const flat: SimulationResult = simulateSchedule(programs, flatCosts);
  const chunkRun = (acts: ScheduleActions | undefined, c: PassCosts[], blocks: readonly number[]) => {
    const lists = acts ? acts.ranks.map((_, r) => lowerActions(acts, r, input.tiedEmbeddings ?? true)) : programs;
    const rankLayers = (v: number) => placement.reduce((a, r, u) => a + (r === placement[v] ? blocks[u] : 0), 0);
    const costs = {
      forwardCost: c.map((x) => x.forward),
      backwardInputCost: c.map((x) => x.backwardInput),
      backwardWeightCost: c.map((x) => x.backwardWeight),
      stageWeights: placement.map((_, v) => blocks[v] / rankLayers(v)),
      pendingWeightFactor: recompute === 'full' ? 2 : 1,
    };
    return { lists, costs };
  };
  /** Memory of rank `i` holding the segments (virtual stage, first layer, count), `inFlight` micro-batches held. */
  const rankMemory = (i: number, segs: readonly { v: number; first: number; count: number }[], inFlight: number) => {
    const isFirst = segs.some((g) => g.v === 0);
    const isLast = segs.some((g) => g.v === V - 1);
    const count = segs.reduce((a, g) => a + g.count, 0);
    const own = segs.reduce((a, g) => a + prefix[g.first + g.count] - prefix[g.first], 0);
    const parameters = own + (isFirst ? groups.embedding : 0) + (isLast ? headParams : 0);
    // fresh parameter gradients exist beside the accumulated ones while a segment's backward runs (TF.js returns new tensors)
    const headFresh = isLast ? groups.head + (tied ? groups.embedding : 0) : 0;
    let checkpoint: number;
    let working: number;
    if (recompute === 'none' || recompute === 'selective') {
      // every layer's tape (and the head's) per in-flight micro-batch. Calibrated on the kept tapes' distinct buffers
      // (`KeptTape`, TF.js cpu, bench/pipeline-memory.mjs): a layer keeps its `saved` terms; the head keeps the final
      // norm's, the normed hidden states and two [B,S,V] (logits and exp(logits − max); the shifted logits are a
      // transient). The tape's backward frees each op's saved tensors and upstream gradients as it goes, so its working
      // set is a few live gradients, not the whole `gradients` list: about 4 [B,S,H] in a layer (plus the attention
      // scores recomputed under selective), 2 [B,S,V] in the head, beside the fresh parameter gradients
      const headKept = sumTerms(headTerms.saved) - B * S * m.vocabSize + bsh;
      const kept = count * layerKept + (isLast ? headKept : 0) + (isFirst ? sumTerms(embedTerms.saved) : 0);
      checkpoint = inFlight * (kept + rope) * e;
      const segments = [4 * bsh + coreSaved + Math.max(...segs.map((g) => maxLayer(g.first, g.count)))];
      if (isLast) segments.push(2 * B * S * m.vocabSize + headFresh);
      if (isFirst) segments.push(sumTerms(embedTerms.gradients) + groups.embedding);
      working = Math.max(...segments) * e;
    } else if (recompute === 'full') {
      checkpoint = inFlight * count * bsh * e;
      const segments = [layerElems + Math.max(...segs.map((g) => maxLayer(g.first, g.count)))];
      if (isLast) segments.push(headElems + headFresh);
      if (isFirst) segments.push(embedElems + groups.embedding);
      working = (Math.max(...segments) + rope) * e;
    } else {
      // each chunk keeps its input; the first stage keeps only the int32 token ids
      checkpoint = inFlight * (isFirst && segs.length === 1 ? B * S * 4 : segs.length * bsh * e);
      const params = own;
      working =
        (count * layerElems +
          params +
          (isLast ? headElems + headFresh : 0) +
          (isFirst ? embedElems + bsh + groups.embedding : 0) +
          rope) *
        e;
    }
    const weightBytes = parameters * bpp.weight;
    const gradientBytes = parameters * bpp.gradient;
    const optimizerBytes = parameters * bpp.optimizer;
    const activationBytes = checkpoint + working;
    // ZeRO 2: the groups in the order the backward produces them, two reduced at once (overlap). One stage: head, layer
    // L−1 … 0, embedding, in buckets of several layers (`zero2InFlight`). P > 1: the last stage's final norm, then its layers from the last (the tied embedding is
    // summed with the other end first and kept whole); with `stage` recompute all of them at once
    const layersDown = [...segs].reverse().flatMap((g) => groups.layers.slice(g.first, g.first + g.count).reverse());
    const order =
      P === 1
        ? [groups.head + groups.embedding, ...layersDown, groups.embedding]
        : [...(isLast ? [groups.head] : []), ...layersDown];
    const twoInFlight = Math.max(...order.map((n, i) => n + (i > 0 ? order[i - 1] : 0)));
    const bucketed =
      zero !== 2
        ? parameters
        : P === 1
          ? zero2InFlight(groups.head, layersDown, groups.embedding)
          : recompute === 'stage'
            ? order.reduce((a, b) => a + b, 0)
            : twoInFlight;
    return {
      parameters,
      inFlight,
      weightBytes,
      gradientBytes,
      gradientInFlightBytes: 4 * bucketed,
      optimizerBytes,
      checkpointBytes: checkpoint,
      workingBytes: working,
      activationBytes,
      peakBytes: weightBytes + gradientBytes + optimizerBytes + activationBytes,
    };
  };

  const given = input.partition ?? 'uniform';
  const rankBlocks = typeof given !== 'string' ? [...given] : isBlocksSpec(given) ? parseBlocks(given) : undefined;
  // blocks given per rank under a schedule with virtual stages: each rank's layers split over its chunks (the earlier
  // chunk takes the extra layer), keeping the given non-uniform split between ranks
  const spreadBlocks =
    V > P && rankBlocks?.length === P
      ? placement.map((r, v) => {
          const mine = placement.flatMap((x, u) => (x === r ? [u] : []));
          const k = mine.indexOf(v);
          return Math.floor(rankBlocks[r] / chunks) + (k < rankBlocks[r] % chunks ? 1 : 0);
        })
      : undefined;
  const spec = spreadBlocks ?? given;
  const blocks = partitionLayers(
    spec,
    {
      layers: L,
      stages: V,
      layerParameters: groups.layers,
      firstStageParameters: groups.embedding,
      lastStageParameters: headParams,
      ranks: P,
      microbatches: Mr,
      // a rank's pass times spread over its L/P layers (the v-shape partitioner simulates zb-v-auto from them)
      layerCosts: {
        forward: (pc.forward * P) / L,
        backwardInput: (pc.backwardInput * P) / L,
        backwardWeight: (pc.backwardWeight * P) / L,
      },
      stagePeakBytes: (v, first, count) =>
        rankMemory(placement[v], [{ v, first, count }], flat.maxInFlight[placement[v]]).peakBytes,
    },
    input.registry,
  );
  const starts = blocks.map((_, v) => blocks.slice(0, v).reduce((a, b) => a + b, 0));
  // with virtual stages each chunk runs its layers' share of its rank's pass times (every rank takes the given times,
  // as every stage does without virtual stages, so the schedules compare on the same footing); a schedule that orders
  // by the chunks' own times (zb-v-auto) is generated again from them
  const layersOfRank = (v: number) => placement.reduce((a, r, u) => a + (r === placement[v] ? blocks[u] : 0), 0);
  const chunkCosts = blocks.map((n, v) => ({
    forward: (pc.forward * n) / layersOfRank(v),
    backwardInput: (pc.backwardInput * n) / layersOfRank(v),
    backwardWeight: (pc.backwardWeight * n) / layersOfRank(v),
  }));
  const simulated =
    V > P
      ? chunkRun(
          schedule.actions?.({ stages: P, microbatches: Mr, costs: pc, stageCosts: chunkCosts }),
          chunkCosts,
          blocks,
        )
      : { lists: programs, costs: flatCosts };
  const sim = V > P ? simulateSchedule(simulated.lists, simulated.costs) : flat;
  // steps back to back with no synchronisation between them (post-validation): the start-up of one fills the drain of
  // the one before where the lists allow it (the V schedules; a tied-gradient exchange between ranks still syncs them)
  const steady = stepsAfter(sim, simulated.lists, simulated.costs);
  const stages: StagePlan[] = Array.from({ length: P }, (_, i) => {
    const segs = blocks.map((count, v) => ({ v, first: starts[v], count })).filter((g) => placement[g.v] === i);
    const layers = segs.reduce((a, g) => a + g.count, 0);
    return {
      stage: i,
      layers,
      firstLayer: segs[0].first,
      ...(V > P ? { chunks: segs.map((g) => ({ stage: g.v, layers: g.count, firstLayer: g.first })) } : {}),
      ...rankMemory(i, segs, sim.maxInFlight[i]),
      binding: false,
    };
  });
  const peakBytes = Math.max(...stages.map((s) => s.peakBytes));
  const bindingStage = stages.findIndex((s) => s.peakBytes === peakBytes);
  stages[bindingStage].binding = true;
  const warnings: string[] = [];
  const bubbleFraction = Math.max(...sim.idleFraction);
  if (Mr < P) {
    warnings.push(
      `${D > 1 ? `M/D = ${Mr}` : `M = ${Mr}`} micro-batches < P = ${P} stages: the pipeline never fills (bubble ${(100 * bubbleFraction).toFixed(1)}% of the step)`,
    );
  }
  if (zero > 0 && D === 1) warnings.push(`--zero ${zero} with --dp 1 shards nothing`);
  const notes = [
    ...(spreadBlocks
      ? [`${chunks} virtual stages per rank: each rank's layers split over them (${blocks.join(',')})`]
      : []),
    `activations: TensorFlow.js autodiff working set of our ${plugin.name} layer, ${e}-byte elements, ${shape.fusedKernels ? 'fused' : 'composed'} RMSNorm/SwiGLU/attention kernels`,
    `state: ${bpp.total} bytes/parameter (${precision}${zero ? `, ZeRO-${zero} over D = ${D}` : ''}: weight ${bpp.weight} + gradient ${round(bpp.gradient)} + optimizer ${round(bpp.optimizer)})`,
    recomputeNote(recompute, shape),
  ];
  if (zero === 2 && D > 1) {
    const inFlight = Math.max(...stages.map((st) => st.gradientInFlightBytes));
    notes.push(
      P === 1
        ? `ZeRO-2 reduce-scatters gradients bucket by bucket during the layer-by-layer backward: at most ${(inFlight / 2 ** 30).toFixed(2)} GiB unreduced at once (two consecutive layer or head groups, fp32) beside the 1/D shard`
        : `ZeRO-2 reduce-scatters each layer's gradients as its backward finishes, two layers in flight (${recompute === 'stage' ? 'with stage recompute: the whole stage at once' : 'full recompute'}): at most ${(inFlight / 2 ** 30).toFixed(2)} GiB unreduced per stage (fp32) beside the 1/D shard`,
    );
  }
  return {
    stages,
    blocks,
    bindingStage,
    peakBytes,
    bubbleFraction,
    makespan: sim.makespan,
    overlapped: { period: steady.period, bubbleFraction: Math.max(...steady.idleFraction) },
    ...(input.memoryBytes !== undefined
      ? { fits: peakBytes <= input.memoryBytes, memoryBytes: input.memoryBytes }
      : {}),
    bytesPerParameter: bpp,
    modelParameters: prefix[L] + groups.embedding + groups.head,
    schedule: scheduleName,
    partition: typeof given === 'string' ? given : given.join(','),
    recompute,
    precision,
    zero,
    dataParallel: D,
    microbatches: M,
    microbatchesPerRank: Mr,
    microBatchSize: B,
    seqLength: S,
    warnings,
    notes,
  };
}

/** What `yuan plan` says about the recompute mode: what a stage keeps between a forward and its backward. */
function recomputeNote(recompute: Recompute, shape: ActivationShape): string {
  switch (recompute) {
    case 'none':
      return 'recompute none: each layer keeps its autodiff tape (what its backward reads) per in-flight micro-batch; no forward runs twice';
    case 'selective':
      return (shape.fusedAttention ?? shape.fusedKernels)
        ? 'recompute selective: as none (the fused attention kernel already recomputes its score tiles in the backward)'
        : 'recompute selective: as none, but the attention scores [B,A,S,S] are recomputed in the backward instead of kept';
    case 'full':
      return "recompute full: each layer's input kept per in-flight micro-batch, one layer's forward run again in its backward";
    case 'stage':
      return 'recompute stage: only the stage input kept per in-flight micro-batch, the whole stage run again in one backward';
  }
}

function round(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}

/** One schedule's line in `planSchedules`' comparison. */
export interface ScheduleChoiceRow {
  schedule: string;
  /** The plan under this schedule, or why there is none (one line, e.g. more virtual stages than layers). */
  plan?: PipelinePlan;
  error?: string;
  /** Simulated step time in `passCosts` units and its idle share (the bubble), peak bytes; undefined with `error`. */
  makespan?: number;
  bubbleFraction?: number;
  /** With steps overlapped (`PipelinePlan.overlapped`): the period and its idle share. */
  overlappedPeriod?: number;
  overlappedBubbleFraction?: number;
  peakBytes?: number;
  /** Whether its peak fits `memoryBytes` (true when no cap is given). */
  fits: boolean;
}

/** `planSchedules`' answer: every schedule's row and the choice (the fastest that fits; undefined when none fits). */
export interface ScheduleChoice {
  rows: ScheduleChoiceRow[];
  choice?: string;
  /** The chosen schedule's plan. */
  plan?: PipelinePlan;
}

/**
 * `--schedule auto`: plans the layout under each schedule (`names`, default every schedule in the registry) with the
 * given pass times (`passCosts`, measured or modelled) and memory cap (`memoryBytes`), and chooses the one with the
 * shortest simulated step among those whose peak fits (with `overlapSteps`, the shortest period of steps run back to
 * back), the first listed on a tie. A schedule that cannot plan the
 * layout (an error of its own, such as interleaved 1F1B's micro-batch rounds) is a row with the error, not a failure;
 * errors of the layout itself (bad sizes, unknown partition) are thrown as `planPipeline` throws them.
 */
export function planSchedules(input: PipelinePlanInput, names?: readonly string[]): ScheduleChoice {
  const registry = input.registry ?? planRegistry();
  const list = names ?? registry.names('schedule');
  // the layout's own errors come from the default schedule
  planPipeline({ ...input, schedule: '1f1b', registry });
  const rows: ScheduleChoiceRow[] = list.map((schedule) => {
    try {
      const plan = planPipeline({ ...input, schedule, registry });
      return {
        schedule,
        plan,
        makespan: plan.makespan,
        bubbleFraction: plan.bubbleFraction,
        overlappedPeriod: plan.overlapped.period,
        overlappedBubbleFraction: plan.overlapped.bubbleFraction,
        peakBytes: plan.peakBytes,
        fits: plan.fits ?? true,
      };
    } catch (e) {
      return { schedule, error: (e as Error).message, fits: false };
    }
  });
  // one step alone, or the period when steps overlap (post-validation)
  const time = (r: ScheduleChoiceRow) => (input.overlapSteps ? r.overlappedPeriod : r.makespan);
  let best: ScheduleChoiceRow | undefined;
  for (const r of rows) if (r.fits && time(r) !== undefined && (!best || time(r)! < time(best)! - 1e-12)) best = r;
  return { rows, ...(best ? { choice: best.schedule, plan: best.plan } : {}) };
}

/**
 * The data-parallel engine's ZeRO 2 gradient buckets with one stage (@yuan/parallel-zero's default
 * `reduceBucketElements`: a quarter of the layers' parameters, at most 2^24): the final norm (`head` elements) and the
 * layers from the last (`layersDown`) packed greedily, a bucket closed once it holds that many, then the tied embedding
 * alone. Replays one micro-batch's backward — the head's group (norm + the projection's share of the embedding), each
 * layer's, the lookup's share — as its gradient space counts it: the buckets being filled (whole), those completed by
 * the group, and the last send still counted in flight (two sends at once, `GROUPS_IN_FLIGHT`). Returns the most
 * elements at once.
 */
function zero2InFlight(head: number, layersDown: readonly number[], embedding: number): number {
  const limit = Math.min(2 ** 24, Math.max(1, Math.ceil(layersDown.reduce((a, b) => a + b, 0) / 4)));
  // bucket of each unit: unit 0 the norm, unit k the k-th layer from the last; the embedding's bucket is the last
  const units = [head, ...layersDown];
  const bucketOf: number[] = [];
  const size: number[] = [];
  const count: number[] = [];
  let open = 0;
  for (const n of units) {
    bucketOf.push(size.length);
    open += n;
    if (open >= limit) {
      size.push(open);
      open = 0;
    }
  }
  if (bucketOf[bucketOf.length - 1] === size.length) size.push(open);
  for (const b of bucketOf) count[b] = (count[b] ?? 0) + 1;
  const emb = size.length;
  size.push(embedding);
  count.push(1);
  const events = [[0, -1], ...layersDown.map((_, k) => [k + 1]), [-1]].map((g) =>
    g.map((u) => (u < 0 ? emb : bucketOf[u])),
  );
  const got = new Map<number, number>();
  let inFlight: number[] = [];
  let peak = 0;
  for (const buckets of events) {
    const done: number[] = [];
    for (const b of buckets) {
      const n = (got.get(b) ?? 0) + 1;
      if (n === count[b]) {
        got.delete(b);
        done.push(size[b]);
      } else got.set(b, n);
    }
    const pending = [...got.keys()].reduce((a, b) => a + size[b], 0);
    const sent = done.reduce((a, b) => a + b, 0);
    peak = Math.max(peak, pending + sent + inFlight.reduce((a, b) => a + b, 0));
    if (done.length) {
      inFlight.push(sent);
      while (inFlight.length >= 2) inFlight = inFlight.slice(1);
    }
  }
  return peak;
}
