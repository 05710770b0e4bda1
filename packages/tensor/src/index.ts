/** @yuan/tensor: TensorFlow.js backend selection, missing kernels and gradients, nn blocks, init and safetensors. */
export { tf } from './tf.js';
export { initBackend, backendReport, BACKEND_ORDER, type BackendName, type BackendReport, type BackendAttempt } from './backend.js';
export { withLinearHooks, type LinearHook } from './linear-hooks.js';
export type { AdapterLayer, TensorAdapterPlugin } from './adapter.js';
export { linear, rmsNorm, swiglu, ropeTables, applyRope, causalAttention, causalConv1d } from './nn.js';
export { Rng } from './rng.js';
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
