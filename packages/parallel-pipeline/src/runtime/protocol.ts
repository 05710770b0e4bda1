import type { Instruction } from '@yuan/plan';
import type { YuanConfig } from '@yuan/core';
import type { TrainConfig } from '@yuan/train';

/**
 * What a stage keeps between a micro-batch's forward and its backward (`Recompute` of @yuan/plan): `none` each
 * sub-part's autodiff tape (no forward runs twice), `selective` the same with the op-by-op attention core recomputed,
 * `full` each layer's input (each layer recomputed), `stage` only the stage input (the whole stage recomputed).
 */
export type Recompute = 'none' | 'selective' | 'full' | 'stage';

/** What a stage worker starts from (`workerData`). */
export interface StageInit {
  /** This rank's index in the pipeline (0 … P − 1). */
  stage: number;
  /** Pipeline ranks P. */
  stages: number;
  /**
   * The (virtual) stages this rank holds, ascending: one (`stage` itself) under a schedule without virtual stages,
   * several (model chunks) under interleaved 1F1B or ZB-V; each with its layers [firstLayer, endLayer).
   */
  chunks: StageChunk[];
  /** Virtual stages V of the pipeline (P without virtual stages): chunk 0 has the embedding, chunk V − 1 the head. */
  virtualStages: number;
  /** The rank holding each virtual stage (length V; `v` itself without virtual stages). */
  placement: number[];
  config: YuanConfig;
  train: TrainConfig;
  seed: number;
  backend?: string;
  /** Plugin modules (file URLs / paths) the worker registers besides @yuan/model and @yuan/tensor (see PipelineOptions.plugins). */
  plugins: string[];
  /** This stage's instruction list for one optimizer step (from the schedule plugin, built by the coordinator). */
  program: Instruction[];
  recompute: Recompute;
  /** Micro-batches this stage runs per step (M/D of the step's M under data parallelism). */
  microbatches: number;
  /** Micro-batches of the whole step M (across the data-parallel ranks): losses and gradients are weighted 1/M. */
  globalMicrobatches: number;
  /** This stage's data-parallel group (the same stage of every data-parallel rank), if D > 1. */
  dataParallel?: StageDataParallel;
  profileMemory: boolean;
  /** Test seam: the hooks the coordinator's thread had installed, for the worker to install (`StageHooks.carry`). */
  hooks?: { module: string; options: unknown };
  /** Milliseconds a stage waits for a silent neighbour before failing, naming it (a dead worker is noticed at once). */
  timeoutMs: number;
}

/** One (virtual) stage a rank holds: its global index 0 … V − 1 and its layers [firstLayer, endLayer). */
export interface StageChunk {
  stage: number;
  firstLayer: number;
  endLayer: number;
}

/** A stage's place in its data-parallel group (the same stage of every data-parallel rank; `pipelineRankEngine`). */
export interface StageDataParallel {
  /** Data-parallel rank r (0 … D − 1) and size D. */
  rank: number;
  size: number;
  /** ZeRO stage: 0 gradient all-reduce; 1 reduce-scatter + sharded AdamW + all-gather; 2 reduce-scatter per micro-batch. */
  zero: 0 | 1 | 2;
}

/** One micro-batch's inputs for one stage (flat row-major [rows, seqLength]). */
export interface MicroInput {
  rows: number;
  seqLength: number;
  positions: Int32Array;
  ids?: Int32Array;
  targets?: Int32Array;
  mask?: Float32Array;
}

/** A stage's memory and time of one step. */
export interface StageStepReport {
  stage: number;
  /** Peak activation bytes of the step (see README: peak tf.memory().numBytes − parameters, moments and gradient accumulators). */
  activationPeakBytes: number;
  /** Parameter + AdamW moment bytes held by the stage at the start of the step. */
  staticBytes: number;
  /** Bytes of the stage's gradient accumulators (4 B/param; under ZeRO 2 the 1/D shards plus the whole tied embedding). */
  gradientBytes: number;
  /** ZeRO 2: the largest bucket of unreduced gradients the stage held at once during its backwards (bytes); else 0. */
  gradientInFlightBytes: number;
  /** AdamW moment bytes the stage holds (8 B/param, 1/D of them under ZeRO 1/2). */
  optimizerBytes: number;
  /** Live tensors of the stage's engine at the start of the step (must not grow across steps). */
  tensors: number;
  /** Most micro-batches whose saved activations the stage held at once. */
  maxInFlight: number;
  /** Decoder-layer forwards the stage ran in the step, recomputed ones included (`LayerRange.layerForwards`). */
  layerForwards: number;
  /** Milliseconds from the step's start to its optimizer step, and of that, waiting on a neighbour. */
  stepMs: number;
  waitMs: number;
  /**
   * Post-validation with overlapped steps: times this step was rerun because the decision of the step before it
   * (settled at this step's optimizer step) rolled back the update its forwards had used (0 when it was kept).
   */
  restarts: number;
  /** Post-validation: the step started before the decision of the step before it had arrived (the steps overlapped). */
  overlapped: boolean;
  /**
   * Milliseconds of compute in the step per (virtual) stage the rank holds and pass kind (F, B, I, W), summed over the
   * micro-batches: what a simulation of the schedule from measured pass times takes.
   */
  passMs: StagePassTimes[];
}

/** One (virtual) stage's compute milliseconds in a step by pass kind, and the passes run. */
export interface StagePassTimes {
  stage: number;
  forward: number;
  backward: number;
  backwardInput: number;
  backwardWeight: number;
  /** Forwards run (micro-batches). */
  count: number;
}

/** Coordinator → stage. */
export type ToStage =
  | { type: 'init'; weights?: [string, Float32Array][]; moments?: [string, Float32Array][]; optimizerStep?: number }
  /** `lr`: the step's learning rate, known before the norm (what a post-validated update applies first). */
  /**
   * `defer` (post-validation): the stage may return after its speculative update without waiting for the decision;
   * the coordinator has posted (or will post) the next step right away.
   */
  | { type: 'step'; step: number; inputs: MicroInput[]; lr: number; defer?: boolean }
  | { type: 'update'; lr: number; norm: number; clip: number }
  | { type: 'discard' }
  | { type: 'eval'; id: number; inputs: MicroInput[] }
  | { type: 'state' };

/** Stage → coordinator. */
export type FromStage =
  | { type: 'ready'; parameters: number; backend: string }
  | { type: 'norm'; step: number; squaredNorm: number; loss?: number }
  | { type: 'stepDone'; step: number; report: StageStepReport }
  | { type: 'discarded' }
  | { type: 'evalDone'; id: number; losses?: number[] }
  | { type: 'state'; weights: [string, Float32Array][]; moments: [string, Float32Array][]; optimizerStep: number }
  | { type: 'failed'; message: string };
