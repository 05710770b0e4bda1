/**
 * @yuan/parallel-pipeline: non-uniform pipeline parallelism — partitioners, GPipe/1F1B schedules as instruction lists,
 * the stage runtime on worker threads with activation checkpointing, the memory planner and the paper's time model.
 */
import type { PluginRegistry } from '@yuan/core';
import { PARTITION_PLUGINS } from './partition.js';
import { SCHEDULE_PLUGINS } from './schedule.js';

export type { PartitionContext, PartitionPlugin, SchedulePlugin } from './plugins.js';
export type { Instruction, ScheduleOptions } from './instructions.js';
export {
  partitionLayers,
  parseBlocks,
  formatBlocks,
  checkBlocks,
  minMaxSplit,
  uniformPartition,
  parametersPartition,
  memoryPartition,
  PARTITION_PLUGINS,
} from './partition.js';
export { buildSchedule, getSchedule, simulateSchedule, gpipeSchedule, oneFOneBSchedule, SCHEDULE_PLUGINS, type SimulationResult } from './schedule.js';
export {
  layerActivation,
  headActivation,
  embeddingActivation,
  ropeTablesElements,
  sumTerms,
  type ActivationShape,
  type ActivationTerm,
  type SegmentActivation,
} from './activation.js';
export { attentionCoreTerms } from './attention-core.js';
export { groupParameters, type ParameterGroups } from './parameters.js';
export {
  planPipeline,
  bytesPerParameter,
  parseRecompute,
  RECOMPUTE_NOTE,
  type PipelinePlanInput,
  type PipelinePlan,
  type StagePlan,
  type BytesPerParameter,
  type Recompute,
  type Precision,
} from './plan.js';
export { planTime, type TimeModelInput, type TimePlan, type MethodTime, type TimeTerm } from './time.js';

/** Registers the built-in partitioners (`uniform`, `parameters`, `memory`) and schedules (`gpipe`, `1f1b`) in `registry`. */
export function registerPipelinePlugins(registry: PluginRegistry): PluginRegistry {
  for (const p of PARTITION_PLUGINS) registry.register(p, '@yuan/parallel-pipeline');
  for (const s of SCHEDULE_PLUGINS) registry.register(s, '@yuan/parallel-pipeline');
  return registry;
}
export { pipelineEngine, type PipelineOptions, type PipelineEngine } from './runtime/engine.js';
export { pipelineRankEngine, type PipelineRankOptions } from './runtime/rank.js';
export { assembleCheckpoint, gatherCheckpointToWriter, encodeStageState, decodeStageState, type StageState } from './runtime/checkpoint.js';
export type { StageStepReport, InjectedFault } from './runtime/protocol.js';
