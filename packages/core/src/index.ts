/** @yuan/core: the plugin registry, plugin interfaces, config schemas and presets. */

export { YuanError, ConfigError, NotFoundError } from './errors.js';
export { escapeRegExp } from './text.js';
export { Rng } from './rng.js';
export { threadsForInput } from './threads.js';
export { PluginRegistry, type PluginBase, type PluginKinds } from './registry.js';
export { num, str, bool, optional, arrayOf, record, obj, type Schema } from './schema.js';
export { deepMerge, applySet, parseSetValue, type JsonObject } from './merge.js';
export { readConfigFile } from './config-file.js';
export {
  DEFAULT_CONFIG,
  validateConfig,
  microbatchesPerRank,
  resolveConfig,
  type YuanConfig,
  type ModelShape,
  type PluginRef,
  type TokenizerRef,
} from './config.js';
export { PRESETS, getPreset, type Preset } from './presets.js';
export {
  countParameters,
  sumTerms,
  joinActivation,
  opActivation,
  rmsNormActivation,
  ropeAttentionActivation,
  attentionCoreActivation,
  ropeAttentionFlops,
  ropeAttentionCache,
  recognizeAttention,
  type AttentionPlugin,
  type AttentionDescription,
  type AttentionSpec,
  type AttentionShape,
  type AttentionFlops,
  type ActivationTerm,
  type ActivationTerms,
  type CacheEntrySpec,
  type ParameterSpec,
  type ParameterInit,
} from './attention.js';
export {
  openTokenizer,
  tokenizerRef,
  type Tokenizer,
  type TokenizerPlugin,
  type TokenizerOptions,
  type SpecialIds,
} from './tokenizer.js';
export type { WeightFormatPlugin } from './weight-format.js';
export type { ModelAdapter, ModelAdapterPlugin, GenerationRequest } from './adapter.js';
export type { AdapterPlugin } from './adapter-plugin.js';
export type {
  FilterDocument,
  FilterDecision,
  DocumentFilter,
  FilterPlugin,
  FilterPresetPlugin,
  FilterStep,
} from './filter.js';
export type { QuantizerPlugin, QuantizeGrid, LinearToQuantize, QuantizedLinear } from './quantizer.js';
export type { EvaluatorPlugin, EvaluatorFlag, EvalContext, EvalResult, EvalSettings } from './evaluator.js';
export {
  writeAtomic,
  commitStaged,
  writeFileAtomic,
  writeFileAtomicSync,
  fsyncPath,
  stagingPath,
  isStaleStagingName,
  removeStaleStaging,
} from './atomic.js';
export {
  loadPluginModule,
  registerPluginModules,
  registerModule,
  moduleRegistry,
  modulePlugins,
  pluginSource,
  resolvePluginModule,
  PLUGINS_EXPORT,
} from './plugin-loader.js';

import { PRESETS } from './presets.js';
/** The plugins @yuan/core provides (what `yuan` registers from it): the built-in presets (kind `preset`). */
export const plugins = PRESETS;
