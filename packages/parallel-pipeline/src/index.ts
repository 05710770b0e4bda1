/**
 * @yuan/parallel-pipeline: the non-uniform pipeline runtime — P stages on worker threads (or on the ranks of a launched
 * job, P × D with ZeRO inside each stage) running the schedules of `@yuan/plan` with activation checkpointing, as a
 * training engine for `runTraining`; `trainParallel` runs any layout of the config's `parallel` section (P × D with ZeRO). The planner itself (partitioners, schedules, memory and time model) is `@yuan/plan`.
 */
export { pipelineEngine, type PipelineOptions, type PipelineEngine } from './runtime/engine.js';
export { pipelineRankEngine, type PipelineRankOptions } from './runtime/rank.js';
export {
  assembleCheckpoint,
  gatherCheckpointToWriter,
  encodeStageState,
  decodeStageState,
  type StageState,
} from './runtime/checkpoint.js';
export type { StageStepReport } from './runtime/protocol.js';
export {
  parallelEngine,
  trainParallel,
  pluginModulesOf,
  type ParallelEngineOptions,
  type ParallelTrainOptions,
  type ParallelRunResult,
  type PluginModuleRef,
} from './train-parallel.js';
