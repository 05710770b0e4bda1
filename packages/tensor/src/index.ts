/** @yuan/tensor: TensorFlow.js backends as plugins and their selection, missing kernels and gradients, nn blocks, init and safetensors. */
export { tf } from './tf.js';
export {
  initBackend,
  backendReport,
  type BackendName,
  type BackendReport,
  type BackendAttempt,
  type BackendPlugin,
  type BackendActivation,
} from './backend.js';
export { withLinearHooks, type LinearHook } from './linear-hooks.js';
export type { AdapterLayer, TensorAdapterPlugin } from './adapter.js';
export { linear, rmsNorm, swiglu, ropeTables, applyRope, causalAttention, causalConv1d } from './nn.js';
export { adamwStep } from './optim.js';
export { setFusedAttention, type AdamWHyper } from './fused.js';
export { initValues } from './init.js';
export {
  openSafetensors,
  writeSafetensors,
  type SafetensorsFile,
  type SafetensorsEntry,
  type TensorToWrite,
  type FloatDType,
} from './safetensors.js';
export { liveTensorCount, BufferMeter, copyTensorInto } from './memory.js';
export { recordTape, KeptTape, type RecordOptions, type BackwardOptions } from './tape.js';
export {
  ropeAttention,
  type AttentionLayer,
  type AttentionContext,
  type AttentionCache,
  type TensorAttentionPlugin,
} from './attention.js';
export {
  weightFormatPlugins,
  fp32Format,
  bf16Format,
  int8Format,
  int4Format,
  toBf16Weight,
  toFp32Weight,
  gptqWeight,
  normalInitTable,
  fillFromTable,
  type StoredWeight,
  type GptqData,
  type TensorWeightFormat,
} from './weights/formats.js';
export { openWeightSource, type WeightSource, type SourceTensor } from './weights/source.js';
export { loadDecodeKernels, decodeKernels, type DecodeKernels } from './weights/kernels.js';
export { packedLinear } from './weights/packed-linear.js';
export {
  DecodeOps,
  SCRATCH_MAX_FLOATS,
  KvCache,
  canDecode,
  type DecodeRow,
  type DecodeWeights,
  type AttentionDecodeLayer,
  type DecodingAttentionPlugin,
} from './weights/decode.js';

import { backendPlugins } from './backend.js';
/**
 * The plugins @yuan/tensor provides (what `yuan` registers from it): the tensor backends `tensorflow-gpu`, `tensorflow`,
 * `wasm`, `cpu`, and `@yuan/tensor-native`'s `native` where that optional dependency is installed. (Its weight formats
 * are registered through `@yuan/model`'s `plugins`.)
 */
export const plugins = backendPlugins;
