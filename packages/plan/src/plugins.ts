import type { PluginBase } from '@yuan/core';
import type { Instruction, ScheduleOptions } from './instructions.js';

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
}

/** A partitioner (registry kind `partition`): layers per stage, length P, each ≥ 1, summing to L. */
export interface PartitionPlugin extends PluginBase<'partition', Record<string, never>> {
  partition(ctx: PartitionContext): number[];
}

/** A pipeline schedule (registry kind `schedule`): one stage's instruction list, and how many micro-batches a stage holds. */
export interface SchedulePlugin extends PluginBase<'schedule', Record<string, never>> {
  /** The instructions of one stage for one optimizer step. */
  instructions(options: ScheduleOptions): Instruction[];
  /** The most micro-batches whose activations stage `stage` holds at once (forwarded, not yet backwarded). */
  inFlight(stage: number, stages: number, microbatches: number): number;
}

declare module '@yuan/core' {
  interface PluginKinds {
    partition: PartitionPlugin;
    schedule: SchedulePlugin;
  }
}
