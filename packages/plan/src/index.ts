/**
 * @yuan/plan: the pipeline planner as plain arithmetic — partitioners and GPipe/1F1B schedules (plugins, schedules as
 * instruction lists with a simulator), the per-stage memory plan (weights, gradients, optimizer, activations, bubble)
 * and the paper's step-time model. It depends on `@yuan/core` only: no tensors, no workers, no TensorFlow.js.
 */
import { planPlugins } from './own.js';

export type { PartitionContext, PartitionPlugin, SchedulePlugin } from './plugins.js';
export type { Instruction, ScheduleOptions, PassCosts } from './instructions.js';
export type { ActionOptions } from './plugins.js';
export {
  formatAction,
  parseAction,
  formatActionLists,
  parseActionLists,
  actionsOf,
  lowerActions,
  type Action,
  type ActionType,
  type ScheduleActions,
} from './actions.js';
export {
  partitionLayers,
  parseBlocks,
  formatBlocks,
  checkBlocks,
  minMaxSplit,
  uniformPartition,
  parametersPartition,
  memoryPartition,
  vShapePartitionPlugin,
} from './partition.js';
export {
  costAwareZbvActions,
  vShapePartition,
  vShapeStep,
  blockCosts,
  vPlacement,
  type VShapeInput,
} from './zbv-auto.js';
export {
  buildSchedule,
  getSchedule,
  simulateSchedule,
  simulateSteps,
  gpipeSchedule,
  oneFOneBSchedule,
  interleavedSchedule,
  zbH1Schedule,
  zbH2Schedule,
  zbvSchedule,
  zbvAutoSchedule,
  type SimulationResult,
  type SimulationCosts,
  type SteadyStateResult,
} from './schedule.js';
export {
  attentionShape,
  layerActivation,
  headActivation,
  embeddingActivation,
  ropeTablesElements,
  sumTerms,
  type ActivationShape,
  type ActivationTerm,
  type SegmentActivation,
} from './activation.js';
export { groupParameters, type ParameterGroups } from './parameters.js';
export {
  planPipeline,
  planSchedules,
  plannedOptions,
  bytesPerParameter,
  parseRecompute,
  type PipelinePlanInput,
  type PlannedAttention,
  type PipelinePlan,
  type ScheduleChoice,
  type ScheduleChoiceRow,
  type StagePlan,
  type BytesPerParameter,
  type Recompute,
  type Precision,
} from './plan.js';
export {
  parallelLayout,
  withParallelLayout,
  fieldNames,
  PARALLEL_SCHEMA,
  PIPELINE_FIELDS,
  PARALLEL_DEFAULTS,
  DATA_PARALLEL_FIELDS,
  DATA_PARALLEL_DEFAULTS,
  type ZeroStage,
  type ParallelLayout,
  type ParallelField,
  type LayoutNaming,
  type LayoutOptions,
  type FieldNames,
} from './layout.js';
export { planTime, type TimeModelInput, type TimePlan, type MethodTime, type TimeTerm } from './time.js';

/** The plugins @yuan/plan provides (what `yuan` registers from it): partitioners `uniform`, `parameters`, `memory`, `v-shape`; schedules `gpipe`, `1f1b`, `interleaved-1f1b`, `zb-h1`, `zb-h2`, `zb-v`, `zb-v-auto`. */
export const plugins = planPlugins();
