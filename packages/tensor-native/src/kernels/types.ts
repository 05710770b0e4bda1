import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { PooledCpuBackend } from '../pool.js';
import type { NativeAddon } from '../addon.js';

/** The arguments tfjs passes to a kernel, with the backend typed as the cpu-style backend it is. */
export interface KernelArgs {
  /** Inputs by name (tfjs passes every input a kernel declares). */
  inputs: Record<string, TensorInfo>;
  backend: PooledCpuBackend;
  attrs: NamedAttrMap;
}

/** A native kernel: its result, or undefined to hand the call to the cpu backend's kernel (unsupported dtype/case). */
export type NativeKernel = (args: KernelArgs, addon: NativeAddon) => TensorInfo | TensorInfo[] | undefined;
