import type { PluginBase } from '@yuan/core';
import type { ScheduleActions } from './actions.js';
import type { Instruction, PassCosts, ScheduleOptions } from './instructions.js';

/**
 * What a partitioner is told. `layers` and `stages` are always given; the cost inputs are given by the planner
 * (`planPipeline`) and the CLI, and a partitioner that needs one that is missing throws a one-line error.
 */
export interface PartitionContext {
  /** Transformer layers of the model (L). */
  layers: number;
  /** Pipeline stages (P); 1 ≤ P ≤ L. */
  stages: number;
  /** Parameters of each layer, in order (length L), from the model's parameter list. */
  layerParameters?: readonly number[];
  /** Parameters only the first stage holds (the embedding). */
  firstStageParameters?: number;
  /** Parameters only the last stage holds (final norm and, with P > 1, the tied output projection's copy). */
  lastStageParameters?: number;
  /** Predicted peak bytes of stage `stage` holding layers [firstLayer, firstLayer + count) (the memory planner). */
  stagePeakBytes?: (stage: number, firstLayer: number, count: number) => number;
  /** Pipeline ranks when `stages` counts virtual stages (a schedule with several chunks per rank); default `stages`. */
  ranks?: number;
  /** Micro-batches per pipeline per step (for a partitioner that simulates the schedule). */
  microbatches?: number;
  /** One layer's pass times F, I, W (any unit), or one per layer (length L). */
  layerCosts?: PassCosts | readonly PassCosts[];
  /** Extra pass times of the first (virtual) stage: the embedding. */
  firstStageCosts?: Partial<PassCosts>;
  /** Extra pass times of the last (virtual) stage: final norm, output projection and loss. */
  lastStageCosts?: Partial<PassCosts>;
}

/** A partitioner (registry kind `partition`): layers per stage, length P, each ≥ 1, summing to L. */
export interface PartitionPlugin extends PluginBase<'partition', Record<string, never>> {
  partition(ctx: PartitionContext): number[];
}

/** What a schedule generator is asked for: P ranks, M micro-batches, optionally pass times (`ScheduleOptions`). */
export type ActionOptions = Omit<ScheduleOptions, 'stage' | 'tiedEmbeddings'> & { costs?: PassCosts };

/**
 * A pipeline schedule (registry kind `schedule`): one rank's instruction list; a built-in one also gives its compute
 * actions (`F`/`B`/`I`/`W` per rank, PyTorch's action strings) and where its virtual stages live.
 */
export interface SchedulePlugin extends PluginBase<'schedule', Record<string, never>> {
  /** The instructions of one rank for one optimizer step. */
  instructions(options: ScheduleOptions): Instruction[];
  /** Virtual stages (model chunks) per rank (default 1): the partition has chunks × P blocks. */
  chunks?: number;
  /** The compute actions of every rank and the rank of each virtual stage. */
  actions?(options: ActionOptions): ScheduleActions;
  /** The most micro-batches whose activations stage `stage` holds at once, where a formula gives it (informational; the planner simulates). */
  inFlight?(stage: number, stages: number, microbatches: number): number;
  /** The bubble's closed form where one exists, for printing beside the simulated bubble (e.g. 1F1B's). */
  bubbleFormula?: string;
}

declare module '@yuan/core' {
  interface PluginKinds {
    partition: PartitionPlugin;
    schedule: SchedulePlugin;
  }
}
