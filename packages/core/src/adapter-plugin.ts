import type { ParameterSpec } from './attention.js';
import type { PluginBase } from './registry.js';

/**
 * A weight adapter (LoRA and its kin): small trainable parameters beside a frozen base model that change what some of
 * its linear layers compute. Like an attention plugin it lists its parameters without allocating (`parameters`, names
 * are full parameter names such as `model.layers.0.self_attn.q_proj.lora_A.weight`, so they are also PEFT's tensor
 * names without the `base_model.model.` prefix) and builds itself over given tensors (`create`). `specs` are the base
 * model's parameter specs (`modelParameters`): a linear weight is a 2-D `[out, in]` spec, and a fused one (`qk_proj`,
 * `up_gate_proj`) lists the Hugging Face names of its row blocks in `parts`, which are the names adapters target.
 * `Adapter` and `Tensor` are the tensor package's types. Files are Hugging Face PEFT's: `peftType` is the
 * `peft_type` of adapter_config.json this plugin reads and writes.
 */
export interface AdapterPlugin<
  Options = Record<string, unknown>,
  Adapter = unknown,
  Tensor = unknown,
> extends PluginBase<'adapter', Options> {
  /** PEFT's `peft_type` in adapter_config.json (e.g. `LORA`). */
  readonly peftType: string;
  /** The adapter's parameters for a base model of these specs; a target that matches no linear weight is a ConfigError. */
  parameters(specs: readonly ParameterSpec[], options: Options): ParameterSpec[];
  /** Builds the adapter over its parameters (`param(name)` gives the tensor of a name `parameters` listed). */
  create(specs: readonly ParameterSpec[], options: Options, param: (name: string) => Tensor): Adapter;
  /** PEFT's adapter_config.json for these options; `base` is the base model's folder (`base_model_name_or_path`). */
  toPeftConfig(options: Options, base: string | null): Record<string, unknown>;
  /**
   * The options of a PEFT adapter_config.json of this plugin's `peft_type` (merged over `defaults` and validated);
   * a setting yuan does not implement is a one-line YuanError naming it and `file`.
   */
  fromPeftConfig(json: Record<string, unknown>, file: string): Options;
}
