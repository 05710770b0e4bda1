import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError,
  openTokenizer,
  PluginRegistry,
  YuanError,
  type JsonObject,
  type ModelAdapterPlugin,
  type PluginBase,
} from '@yuan/core';
import { initBackend, weightFormatPlugins, type TensorAttentionPlugin } from '@yuan/tensor';
import { LocalModelAdapter } from './adapter.js';
import { loraAdapter } from './adapter/lora.js';
import { adapterLookup, loadAdapter } from './adapter/peft.js';
import type { AttentionLookup } from './checkpoint.js';
import { loadInferenceModel } from './infer/load.js';
import { mhaAttention } from './mha.js';
import { listCheckpoints } from './run-folder.js';

/**
 * Looks attention plugins up by name in a registry (an unknown name lists the registered ones); `all` lists them.
 * `builtins`: the sources (`registry.sourceOf`) of the built-in plugin packages; the plugins from any other source
 * (the ones the user named) are `preferred` when recognizing a checkpoint whose config names no attention plugin.
 */
export function attentionLookup(registry: PluginRegistry, builtins: readonly string[] = []): AttentionLookup {
  const all = () => registry.list('attention') as TensorAttentionPlugin<unknown>[];
  return Object.assign((name: string) => registry.get('attention', name) as TensorAttentionPlugin<unknown>, {
    all,
    preferred: () =>
      new Set(all().flatMap((p) => (builtins.includes(registry.sourceOf('attention', p.name)) ? [] : [p.name]))),
  });
}

/** A checkpoint folder, or for a training run folder (no config.json, checkpoint-N inside) its newest complete checkpoint. */
export function resolveModelDir(dir: string): string {
  if (existsSync(path.join(dir, 'config.json'))) return dir;
  const checkpoints = listCheckpoints(dir);
  return checkpoints.length ? checkpoints[checkpoints.length - 1] : dir;
}

/** Options of the `local` model adapter. */
export interface LocalAdapterOptions {
  /** A Hugging Face YUAN checkpoint folder or a training run folder (its newest complete checkpoint). */
  path: string;
  /** A tokenizer spec (`bytes`, `FILE.model`, `NAME:PATH`); default: the one the checkpoint's config names. */
  tokenizer?: string;
  /** The tensor backend, a backend plugin in the registry (default: the highest priority that loads). */
  backend?: string;
  /** Config overrides merged over the checkpoint's (e.g. attention options). */
  overrides?: JsonObject;
  /** Display name; default the folder's name. */
  name?: string;
  /** A PEFT adapter folder (or run folder of adapter checkpoints) applied over the model (`--peft`). */
  peft?: string;
}

/** The `local` model adapter: a checkpoint on this machine, generation with its attention plugin's caches. */
export const localModelAdapter: ModelAdapterPlugin<LocalAdapterOptions> = {
  kind: 'model-adapter',
  name: 'local',
  description: 'a YUAN checkpoint or training run folder on this machine (options: path, tokenizer, backend, peft)',
  defaults: { path: '' },
  validate(options) {
    if (typeof options.path !== 'string' || !options.path)
      throw new ConfigError('model-adapter local: options.path must name a checkpoint folder');
    return options as unknown as LocalAdapterOptions;
  },
  async open(options, context) {
    const registry = context?.registry;
    if (!registry)
      throw new YuanError(
        'usage',
        'the local model adapter needs the plugin registry (attention and tokenizer plugins)',
      );
    await initBackend(options.backend, registry);
    const model = await loadInferenceModel(
      resolveModelDir(options.path),
      attentionLookup(registry),
      options.overrides ?? {},
      {
        onIgnored: (note) => context.note?.(note),
      },
    );
    try {
      if (options.peft) await loadAdapter(model, options.peft, adapterLookup(registry));
      const ref = model.config.tokenizer;
      // the checkpoint's own tokenizer opens without a flag when it has a file, or when its plugin reads none
      const spec =
        options.tokenizer ?? (ref.path || !registry.get('tokenizer', ref.name).fileExtensions ? ref : undefined);
      if (!spec)
        throw new YuanError(
          'usage',
          `${options.path}: the checkpoint names no tokenizer file; give --tokenizer FILE.model`,
        );
      const tokenizer = await openTokenizer(registry, spec);
      return new LocalModelAdapter(model, tokenizer, options.name ?? path.basename(path.resolve(options.path)));
    } catch (e) {
      model.dispose();
      throw e;
    }
  },
};

/**
 * Every plugin @yuan/model provides: attention `mha`, model adapter `local`, adapter `lora`, and the built-in weight
 * formats of @yuan/tensor (`fp32`, `bf16`, `int8`, `int4`); the tokenizers are `@yuan/tokenizer`'s.
 */
export const plugins: PluginBase<string, unknown>[] = [
  mhaAttention,
  localModelAdapter,
  loraAdapter,
  ...weightFormatPlugins,
] as PluginBase<string, unknown>[];
