/** @yuan/parallel-pipeline: non-uniform pipeline parallelism (stages on worker threads, GPipe / 1F1B, recompute). */
export { pipelineEngine, type PipelineOptions, type PipelineEngine } from './runtime/engine.js';
export { runtimeSchedule, SCHEDULES, type Instruction, type ScheduleName, type StagePosition } from './runtime/schedule.js';
export { parsePartition } from './runtime/partition.js';
export type { Recompute, StageStepReport, InjectedFault } from './runtime/protocol.js';
