/** @yuan/data-filter: a streaming pretraining-data filter for Chinese and English text and code. */
export { runFilter, DEFAULT_WORKERS, workersForInput, type RunFilterOptions, type FilterProgress } from './run.js';
export { FilterPipeline, type PipelineResult } from './pipeline.js';
export { buildFilterRegistry } from './plugins.js';
export { FILTER_PRESETS, type FilterPreset, type FilterStep } from './presets.js';
export { resolveFilterConfig, getFilterPreset, CONFIG_DEFAULTS, type FilterConfig } from './config.js';
export { detectLanguage, type LanguageGuess } from './lang/detect.js';
export { MinHasher, type MinHashParams } from './dedup/minhash.js';
export { chooseBands, candidateProbability } from './dedup/bands.js';
export { parseShard, type Shard } from './shard.js';
export type { FilterReport, FilterStats, ReasonStats, ReasonExample } from './report.js';
export { resolveConfig, type ConfigLayers } from './run.js';
export {
  createPlan,
  readPlan,
  selectTasks,
  printPlan,
  splitDedup,
  STAGES,
  STAGE_DOC,
  type FilterPlan,
  type StageName,
  type StageTask,
  type CreatePlanOptions,
  type PrintOptions,
} from './stages/plan.js';
export { runStage, planStatus, type StageResult } from './stages/run.js';
import { BUILTIN_PLUGINS } from './plugins.js';
/** The plugins this package provides (what `yuan` registers from it): the built-in filters and filter presets. */
export const plugins = BUILTIN_PLUGINS;
