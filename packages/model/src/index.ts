/** @yuan/model: the YUAN-style decoder, the `mha` attention plugin, loss, generation with caches and HF checkpoints. */
export { YuanModel, disposeCache, wholeModel, partParameters, parameterSeed, type AttachableAdapter, type ModelCache, type ForwardOptions, type ModelPart, type PartForwardOptions } from './model.js';
export { mhaAttention } from './mha.js';
export { loraAdapter, parseLoraOptions, loraScale, LORA_DEFAULTS, type LoraOptions } from './adapter/lora.js';
export { AdapterModule, adapterOptions } from './adapter/module.js';
export {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  adapterLookup,
  writeAdapterFiles,
  saveAdapter,
  readAdapterFiles,
  adapterFromFiles,
  resolveAdapterDir,
  loadAdapter,
  type AdapterLookup,
  type AdapterFiles,
} from './adapter/peft.js';
export { modelParameters, attentionSpec, attentionOptions } from './parameters.js';
export { crossEntropy, nextTokenLoss } from './loss.js';
export { sampleToken, type SamplingOptions } from './sampling.js';
export { generate, generateTokens, type GenerateOptions } from './generate.js';
export { loadCheckpoint, readCheckpoint, saveCheckpoint, writeModelFiles, configFromHf, configToHf, ignoredTensorsNote, type AttentionLookup, type LoadCheckpointOptions } from './checkpoint.js';
export * from './train/index.js';
export { SentencePieceTokenizer, loadSentencePiece, ByteTokenizer, tokenizerPlugins } from './tokenizer/index.js';
export { LocalModelAdapter, type CompletionInfo } from './adapter.js';
export { plugins, localModelAdapter, attentionLookup, resolveModelDir, type LocalAdapterOptions } from './plugins.js';
export { CompletionText, firstStop, type TextStep } from './serve/completion-text.js';
export {
  ServingEngine,
  ServeInputError,
  tokenString,
  type ServeRequest,
  type PreparedRequest,
  type ServeResult,
  type ServeChoice,
  type TokenLogprob,
  type ServeListener,
  type ServingEngineOptions,
} from './serve/engine.js';
