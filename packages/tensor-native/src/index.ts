import { cpus } from 'node:os';
import { loadAddon, workerWaitPolicy } from './addon.js';
import { NATIVE_BACKEND, nativeKernelNames, registerBackend } from './backend.js';
import { adamwUpdate } from './fused/adamw.js';
import { causalAttention } from './fused/attention.js';
import { rmsNorm } from './fused/rmsnorm.js';
import { ropeHeads } from './fused/rope.js';
import { swigluActivation } from './fused/swiglu.js';
import { tf } from './tf.js';
import { weightKernels } from './weights.js';

export { adamwUpdate, type AdamWStep } from './fused/adamw.js';
export { causalAttention } from './fused/attention.js';
export { rmsNorm } from './fused/rmsnorm.js';
export { ropeHeads } from './fused/rope.js';
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
  /**
   * The BLAS the addon runs on, as OpenBLAS reports it, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Zen
   * MAX_THREADS=64 (openmp)": "(openmp)" when it shares the kernels' OpenMP thread pool, "(pthreads)" when it has its own.
   */
  blas: string;
  /** How idle OpenMP workers wait between parallel regions: "sleep", "spin N", with why when YUAN_THREAD_SPIN=auto chose. */
  workers: string;
  /** How the decode kernels' idle workers wait (csrc/pool.h): "spin N µs, then sleep" or "sleep" (YUAN_DECODE_SPIN_US). */
  decodeWorkers: string;
}

function decodeWaitPolicy(): string {
  const us = weightKernels().setDecodeSpin(-1);
  return us > 0 ? `spin ${us} µs, then sleep` : 'sleep';
}

/** The priority "native" registers with: above tfjs's wasm (2) and cpu (1), below tfjs-node (3). */
export const NATIVE_PRIORITY = 2.5;

/**
 * Loads the OpenBLAS addon and registers the tfjs backend "native" (priority `NATIVE_PRIORITY`, 2.5).
 * BLAS threads: `threads`, else `YUAN_NATIVE_THREADS`, else the number of cores. Throws a one-line error if the addon is
 * not built (no OpenBLAS at install time).
 */
export function registerNativeBackend(options: { threads?: number; priority?: number } = {}): NativeBackendInfo {
  const addon = loadAddon();
  const threads = options.threads ?? (Number(process.env.YUAN_NATIVE_THREADS) || cpus().length);
  // The elementwise kernels are memory-bound and run on one thread unless YUAN_NATIVE_KERNEL_THREADS says otherwise:
  // on a busy machine a second thread that is not scheduled in time makes every parallel loop wait for it.
  addon.setThreads(threads, Number(process.env.YUAN_NATIVE_KERNEL_THREADS) || 1);
  registerBackend(addon, options.priority ?? NATIVE_PRIORITY);
  return {
    name: NATIVE_BACKEND,
    threads: addon.threads(),
    kernels: nativeKernelNames(),
    blas: addon.blas(),
    workers: workerWaitPolicy(),
    decodeWorkers: decodeWaitPolicy(),
  };
}

/**
 * The `native` backend as a yuan plugin (registry kind `backend`, declared by `@yuan/tensor`; this package does not
 * depend on it, the object has the kind's shape): activating it loads the addon, registers the tfjs backend with its
 * priority (`registerNativeBackend`), selects it and hands yuan the fused RMSNorm, SwiGLU, AdamW, causal-attention and rotary-embedding kernels.
 */
export const nativeBackend = {
  kind: 'backend' as const,
  name: NATIVE_BACKEND,
  description: 'OpenBLAS addon (@yuan/tensor-native): multi-threaded BLAS matMul and native kernels',
  defaults: {},
  priority: NATIVE_PRIORITY,
  async activate(): Promise<{
    threads: number;
    library: string;
    fused: {
      rmsNorm: typeof rmsNorm;
      swigluActivation: typeof swigluActivation;
      adamwUpdate: typeof adamwUpdate;
      causalAttention: typeof causalAttention;
      ropeHeads: typeof ropeHeads;
    };
  }> {
    let info: NativeBackendInfo;
    try {
      info = registerNativeBackend();
    } catch (e) {
      throw new Error(`native failed: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!(await tf.setBackend(NATIVE_BACKEND))) throw new Error('native backend did not initialise');
    return {
      threads: info.threads,
      library: `${info.blas}; idle OpenMP workers ${info.workers}; idle decode workers ${info.decodeWorkers}`,
      fused: { rmsNorm, swigluActivation, adamwUpdate, causalAttention, ropeHeads },
    };
  },
};

/** The plugins @yuan/tensor-native provides: the `native` tensor backend. */
export const plugins = [nativeBackend];
