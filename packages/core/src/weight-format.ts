import type { PluginBase } from './registry.js';

/**
 * A weight format: how a linear weight of logical shape [out, in] (PyTorch layout) is stored in a checkpoint and in
 * memory, and how it is multiplied. Built-ins: `fp32`, `bf16`, and the GPTQ-packed `int8` and `int4` (Hugging Face's
 * AutoGPTQ layout). `Weight` (the in-memory form) and `Source` (a checkpoint's tensors) are the tensor package's types;
 * a weight keeps its format's storage, and the kernels compute with it.
 */
export interface WeightFormatPlugin<Weight = unknown, Source = unknown> extends PluginBase<
  'weight-format',
  Record<string, never>
> {
  /** Storage bits per weight, without scales or zero points (32, 16, 8, 4). */
  readonly bits: number;
  /** The weight `base` (a tensor name without `.weight`) from a checkpoint when it is stored in this format, else undefined. */
  read(source: Source, base: string, shape: readonly [number, number]): Weight | undefined;
}
