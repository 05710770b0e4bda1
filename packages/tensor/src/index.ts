/** @yuan/tensor: TensorFlow.js backend selection, missing kernels and gradients, nn blocks, init and safetensors. */
export { tf } from './tf.js';
export {
  initBackend,
  backendReport,
  BACKEND_ORDER,
  type BackendName,
  type BackendReport,
  type BackendAttempt,
} from './backend.js';
export {
  linear,
  observeLinear,
  type LinearObserver,
  rmsNorm,
  swiglu,
  ropeTables,
  applyRope,
  causalAttention,
  causalConv1d,
} from './nn.js';
export { adamwStep } from './optim.js';
export type { AdamWHyper } from './fused.js';
export { initValues } from './init.js';
export {
  openSafetensors,
  writeSafetensors,
  type SafetensorsFile,
  type SafetensorsEntry,
  type TensorToWrite,
  type FloatDType,
} from './safetensors.js';
export { liveTensorCount, BufferMeter } from './memory.js';
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
export {
  DecodeOps,
  KvCache,
  canDecode,
  type DecodeRow,
  type DecodeWeights,
  type AttentionDecodeLayer,
  type DecodingAttentionPlugin,
} from './weights/decode.js';
