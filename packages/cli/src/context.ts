import { existsSync } from 'node:fs';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { lpaAttention } from '@yuan/attention-lpa';
import { applySet, getPreset, PluginRegistry, readConfigFile, resolveConfig, YuanError, type JsonObject, type Tokenizer, type YuanConfig } from '@yuan/core';
import { listCheckpoints, loadCheckpoint, mhaAttention, tokenizerPlugins, YuanModel, type AttentionLookup } from '@yuan/model';
import { initBackend, type TensorAttentionPlugin } from '@yuan/tensor';
import { numberOption, type OptionSpec } from './command.js';

/** The registry with every built-in plugin: attention `mha`, `lfa` and `lpa`, tokenizers `bytes` and `sentencepiece`. */
export function buildRegistry(): PluginRegistry {
  const registry = new PluginRegistry();
  registry.register(mhaAttention).register(lfaAttention).register(lpaAttention);
  for (const t of tokenizerPlugins) registry.register(t);
  return registry;
}

/** Options shared by commands that build a config: --preset, --config, --set (repeatable). */
export const CONFIG_OPTIONS: OptionSpec = {
  preset: { type: 'string' },
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
};

/** The `--backend` option. */
export const BACKEND_OPTION: OptionSpec = { backend: { type: 'string' } };

/** The --set assignments of parsed options as one config layer. */
export function setLayer(values: Record<string, unknown>): JsonObject {
  return ((values.set as string[] | undefined) ?? []).reduce<JsonObject>((acc, s) => applySet(acc, s), {});
}

/** Resolves defaults < --preset < --config < --set into a validated config. */
export function loadConfig(values: Record<string, unknown>, fallbackPreset?: string): YuanConfig {
  const presetName = (values.preset as string | undefined) ?? fallbackPreset;
  const layers: JsonObject[] = [];
  if (presetName) layers.push(getPreset(presetName).config);
  if (values.config) layers.push(readConfigFile(values.config as string));
  layers.push(setLayer(values));
  return resolveConfig(...layers);
}

/** Looks attention plugins up by name in the registry (an unknown name lists the registered ones). */
export function attentionLookup(registry: PluginRegistry): AttentionLookup {
  return (name) => registry.get('attention', name) as TensorAttentionPlugin<unknown>;
}

/** The attention plugin a config names. */
export function attentionOf(registry: PluginRegistry, config: YuanConfig): TensorAttentionPlugin<unknown> {
  return attentionLookup(registry)(config.attention.name);
}

/** A checkpoint folder, or for a training run folder (no config.json, checkpoint-N inside) its newest complete checkpoint. */
export function resolveModelDir(dir: string): string {
  if (existsSync(path.join(dir, 'config.json'))) return dir;
  const checkpoints = listCheckpoints(dir);
  return checkpoints.length ? checkpoints[checkpoints.length - 1] : dir;
}

/**
 * The model a command runs: a checkpoint or training-run folder (`--model DIR`, with --set overrides of e.g. attention options) or
 * a freshly initialised preset (`--preset NAME`, seeded by --seed). Selects the tensor backend first.
 */
export async function openModel(values: Record<string, unknown>, registry: PluginRegistry): Promise<YuanModel> {
  await initBackend(values.backend as string | undefined);
  const dir = values.model as string | undefined;
  if (dir) return loadCheckpoint(resolveModelDir(dir), attentionLookup(registry), setLayer(values));
  if (!values.preset && !values.config) throw new YuanError('usage', 'give --model DIR (a checkpoint) or --preset NAME (a freshly initialised model)');
  const config = loadConfig(values);
  return YuanModel.init(config, attentionOf(registry, config), numberOption(values, 'seed', 0, { int: true }));
}

/** The tokenizer of `--tokenizer FILE.model|bytes`, else the one the model's config names. */
export async function openTokenizer(registry: PluginRegistry, flag: string | undefined, config?: YuanConfig): Promise<Tokenizer> {
  if (flag === 'bytes') return registry.get('tokenizer', 'bytes').load({});
  if (flag) return registry.get('tokenizer', 'sentencepiece').load({ path: path.resolve(flag) });
  if (config?.tokenizer.name === 'bytes') return registry.get('tokenizer', 'bytes').load({});
  if (config?.tokenizer.path) return registry.get('tokenizer', config.tokenizer.name).load({ path: config.tokenizer.path });
  throw new YuanError('usage', 'this model has no built-in tokenizer: give --tokenizer FILE.model (or use --prompt-ids)');
}
