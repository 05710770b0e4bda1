/**
 * @yuan/model: the YUAN-style decoder (whole or in parts), the `mha` attention plugin, the `lora` adapter (PEFT files,
 * merging), loss, sampling and generation with caches, Hugging Face checkpoints, the run folder's checkpoint manifest
 * and the `local` model adapter.
 */
export {
  YuanModel,
  disposeCache,
  wholeModel,
  partParameters,
  parameterSeed,
  type AttachableAdapter,
  type ModelCache,
  type ForwardOptions,
  type ModelPart,
  type PartForwardOptions,
} from './model.js';
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
export {
  loadCheckpoint,
  readCheckpoint,
  saveCheckpoint,
  writeModelFiles,
  configFromHf,
  configToHf,
  ignoredTensorsNote,
  packedWeightShape,
  type AttentionLookup,
  type LoadCheckpointOptions,
} from './checkpoint.js';
export {
  listCheckpoints,
  checkpointProblem,
  readCheckpointManifest,
  checkpointFolderName,
  isCheckpointFolderName,
  CHECKPOINT_MANIFEST,
  type CheckpointManifest,
} from './run-folder.js';
export { Decoder, type DecodeSequence, type DecodeItem } from './infer/decoder.js';
export { loadInferenceModel, initInferenceModel, readStoredModel, type InferenceLoadOptions } from './infer/load.js';
export {
  readInferenceWeights,
  randomInferenceWeights,
  inferenceWeightsFromFloat32,
  dequantizedValues,
  weightBytes,
  type InferenceWeights,
  type RandomWeightOptions,
} from './infer/weights.js';
export { LocalModelAdapter, type CompletionInfo } from './adapter.js';
export { plugins, localModelAdapter, attentionLookup, resolveModelDir, type LocalAdapterOptions } from './plugins.js';
