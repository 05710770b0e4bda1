import { cpus } from 'node:os';
import { loadAddon } from './addon.js';
import { NATIVE_BACKEND, nativeKernelNames, registerBackend } from './backend.js';

export { adamwUpdate, type AdamWStep } from './fused/adamw.js';
export { causalAttention } from './fused/attention.js';
export { rmsNorm } from './fused/rmsnorm.js';
export { swigluActivation } from './fused/swiglu.js';
export { weightKernels, type WeightKernels } from './weights.js';

/** What `registerNativeBackend` set up. */
export interface NativeBackendInfo {
  /** The tfjs backend name ("native"). */
  name: string;
  /** Threads of OpenBLAS (the other kernels run on one thread unless YUAN_NATIVE_KERNEL_THREADS is set). */
  threads: number;
  /** tfjs kernels that run natively; all other kernels are the cpu backend's. */
  kernels: string[];
}

/**
 * Loads the OpenBLAS addon and registers the tfjs backend "native" (priority 2.5: above wasm and cpu, below tfjs-node).
 * BLAS threads: `threads`, else `YUAN_NATIVE_THREADS`, else the number of cores. Throws a one-line error if the addon is
 * not built (no OpenBLAS at install time).
 */
export function registerNativeBackend(options: { threads?: number; priority?: number } = {}): NativeBackendInfo {
  const addon = loadAddon();
  const threads = options.threads ?? (Number(process.env.YUAN_NATIVE_THREADS) || cpus().length);
  // The elementwise kernels are memory-bound and run on one thread unless YUAN_NATIVE_KERNEL_THREADS says otherwise:
  // on a busy machine a second thread that is not scheduled in time makes every parallel loop wait for it.
  addon.setThreads(threads, Number(process.env.YUAN_NATIVE_KERNEL_THREADS) || 1);
  registerBackend(addon, options.priority ?? 2.5);
  return { name: NATIVE_BACKEND, threads: addon.threads(), kernels: nativeKernelNames() };
}
