import { cpus } from 'node:os';
import { loadAddon } from './addon.js';
import { NATIVE_BACKEND, nativeKernelNames, registerBackend } from './backend.js';

/** What `registerNativeBackend` set up. */
export interface NativeBackendInfo {
  /** The tfjs backend name ("native"). */
  name: string;
  /** Threads of OpenBLAS and of the elementwise kernels. */
  threads: number;
  /** tfjs kernels that run natively; all other kernels are the cpu backend's. */
  kernels: string[];
}

/**
 * Loads the OpenBLAS addon and registers the tfjs backend "native" (priority 2.5: above wasm and cpu, below tfjs-node).
 * Threads: `threads`, else `YUAN_NATIVE_THREADS`, else the number of cores. Throws a one-line error if the addon is
 * not built (no OpenBLAS at install time).
 */
export function registerNativeBackend(options: { threads?: number; priority?: number } = {}): NativeBackendInfo {
  const addon = loadAddon();
  const threads = options.threads ?? (Number(process.env.YUAN_NATIVE_THREADS) || cpus().length);
  addon.setThreads(threads);
  registerBackend(addon, options.priority ?? 2.5);
  return { name: NATIVE_BACKEND, threads: addon.threads(), kernels: nativeKernelNames() };
}
