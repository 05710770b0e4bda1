import { tf } from './tf.js';
import type { NativeAddon } from './addon.js';
import { adamwKernels } from './fused/adamw.js';
import { attentionKernels } from './fused/attention.js';
import { rmsNormKernels } from './fused/rmsnorm.js';
import { ropeKernels } from './fused/rope.js';
import { swigluKernels } from './fused/swiglu.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { layoutKernels } from './kernels/layout.js';
import { batchMatMul } from './kernels/matmul.js';
import { reduceKernels } from './kernels/reduce.js';
import type { KernelArgs, NativeKernel } from './kernels/types.js';
import { PooledCpuBackend } from './pool.js';

/** The tfjs backend name. */
export const NATIVE_BACKEND = 'native';

const NATIVE_KERNELS: Record<string, NativeKernel> = {
  BatchMatMul: batchMatMul,
  ...elementwiseKernels,
  ...reduceKernels,
  ...layoutKernels,
};

/** Names of the kernels that run natively (the rest are the cpu backend's). */
export function nativeKernelNames(): string[] {
  return Object.keys(NATIVE_KERNELS);
}

/**
 * Registers the backend under `native` with the given priority: every kernel of the cpu backend, with the native ones
 * replacing their cpu versions (each falls back to the cpu kernel for dtypes or cases it does not handle).
 */
export function registerBackend(addon: NativeAddon, priority: number): void {
  if (tf.findBackendFactory(NATIVE_BACKEND)) return;
  for (const config of tf.getKernelsForBackend('cpu')) {
    const native = NATIVE_KERNELS[config.kernelName];
    const cpu = config.kernelFunc;
    const kernelFunc: tf.KernelFunc = native
      ? (args) => native(args as unknown as KernelArgs, addon) ?? cpu(args)
      : cpu;
    tf.registerKernel({ ...config, backendName: NATIVE_BACKEND, kernelFunc });
  }
  // Fused kernels have no cpu version: they exist on this backend only, called by the fused ops.
  for (const [kernelName, kernel] of Object.entries({
    ...rmsNormKernels,
    ...swigluKernels,
    ...adamwKernels,
    ...attentionKernels,
    ...ropeKernels,
  })) {
    tf.registerKernel({
      kernelName,
      backendName: NATIVE_BACKEND,
      kernelFunc: (args) => kernel(args as unknown as KernelArgs, addon)!,
    });
  }
  // The storage is the cpu backend's (tensors stay in JS typed arrays), with reuse of native outputs.
  tf.registerBackend(NATIVE_BACKEND, () => new PooledCpuBackend(), priority);
}
