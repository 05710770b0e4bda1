/** @yuan/model: the YUAN-style decoder, the `mha` attention plugin, loss, generation with caches and HF checkpoints. */
export { YuanModel, disposeCache, type ModelCache, type ForwardOptions } from './model.js';
export { mhaAttention } from './mha.js';
export { modelParameters, attentionSpec, attentionOptions } from './parameters.js';
export { crossEntropy, nextTokenLoss } from './loss.js';
export { sampleToken, type SamplingOptions } from './sampling.js';
export { generate, generateTokens, type GenerateOptions } from './generate.js';
export { loadCheckpoint, saveCheckpoint, configFromHf, configToHf, type AttentionLookup } from './checkpoint.js';
export * from './train/index.js';
export { SentencePieceTokenizer, loadSentencePiece, ByteTokenizer, tokenizerPlugins } from './tokenizer/index.js';
export { LocalModelAdapter, type CompletionInfo } from './adapter.js';
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
