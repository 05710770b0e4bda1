import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applySet,
  deepMerge,
  getPreset,
  openTokenizer as openRegisteredTokenizer,
  PluginRegistry,
  readConfigFile,
  registerPluginModules,
  resolvePluginModule,
  resolveConfig,
  YuanError,
  type JsonObject,
  type Tokenizer,
  type YuanConfig,
} from '@yuan/core';
import type { YuanModel } from '@yuan/model';
import { numberOption, type OptionSpec } from './command.js';

/**
 * The packages whose plugins are built in. They are loaded exactly as a third-party plugin package is (its exported
 * plugin objects registered under the package's name), resolved from the CLI's own installation.
 */
const BUILTIN_PLUGIN_PACKAGES = ['@yuan/model', '@yuan/attention-lfa', '@yuan/attention-lpa', '@yuan/eval', '@yuan/data-filter', '@yuan/parallel-pipeline', '@yuan/parallel-zero'];

const CLI_DIR = path.dirname(fileURLToPath(import.meta.url));

/** Options shared by commands that build a config: --preset, --config, --set (repeatable), --plugin (repeatable). */
export const CONFIG_OPTIONS: OptionSpec = {
  preset: { type: 'string' },
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
  plugin: { type: 'string', multiple: true },
};

/** The `--plugin PKG|PATH` option (repeatable) for commands that take no config. */
export const PLUGIN_OPTION: OptionSpec = { plugin: { type: 'string', multiple: true } };

/** The `--backend` option. */
export const BACKEND_OPTION: OptionSpec = { backend: { type: 'string' } };

/** The `--peft DIR` option: a PEFT adapter folder (or a run folder of adapter checkpoints) applied over the model. */
export const PEFT_OPTION: OptionSpec = { peft: { type: 'string' } };

/** The --set assignments of parsed options as one config layer. */
export function setLayer(values: Record<string, unknown>): JsonObject {
  return ((values.set as string[] | undefined) ?? []).reduce<JsonObject>((acc, s) => applySet(acc, s), {});
}

/** A config file layer with relative `plugins:` paths resolved against the file's folder. */
function configFileLayer(file: string): JsonObject {
  const layer = readConfigFile(file);
  if (Array.isArray(layer.plugins)) {
    layer.plugins = layer.plugins.map((p) => (typeof p === 'string' && p.startsWith('.') ? path.resolve(path.dirname(file), p) : p));
  }
  return layer;
}

/** The --config file and --set assignments as one layer (merged over a checkpoint's own config). */
export function overrideLayer(values: Record<string, unknown>): JsonObject {
  return deepMerge(values.config ? configFileLayer(values.config as string) : {}, setLayer(values));
}

/** Resolves defaults < --preset < --config < --set (< `flags`, layers a command makes of its flags) into a validated config. */
export function loadConfig(values: Record<string, unknown>, fallbackPreset?: string, ...flags: JsonObject[]): YuanConfig {
  const presetName = (values.preset as string | undefined) ?? fallbackPreset;
  const layers: JsonObject[] = [];
  if (presetName) layers.push(getPreset(presetName).config);
  if (values.config) layers.push(configFileLayer(values.config as string));
  layers.push(setLayer(values));
  return resolveConfig(...layers, ...flags);
}

/** The plugin modules a checkpoint's config.json records (`yuan.plugins`), so a model trained with a plugin reloads with it. */
function checkpointPlugins(configFile: string): string[] {
  if (!existsSync(configFile)) return [];
  try {
    const plugins = (JSON.parse(readFileSync(configFile, 'utf8')) as { yuan?: { plugins?: unknown } }).yuan?.plugins;
    return Array.isArray(plugins) ? plugins.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}

function isMissingOptional(spec: string, e: unknown): boolean {
  return spec.startsWith('@yuan/parallel-') && /is not installed/.test((e as Error).message);
}

/**
 * The plugin registry of a run: the built-in packages, then the plugin modules named by the config's `plugins:`, by a
 * checkpoint's recorded plugins (`--model DIR`) and by `--plugin` flags; frozen, so the run's plan cannot change.
 * Errors: a module that cannot be found or loaded, exports no plugin, or registers a name twice (one line each).
 */
export async function loadRegistry(values: Record<string, unknown>, config?: YuanConfig): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  for (const spec of BUILTIN_PLUGIN_PACKAGES) {
    try {
      await registerPluginModules(registry, [spec], CLI_DIR);
    } catch (e) {
      if (!isMissingOptional(spec, e)) throw e; // the parallel packages are optional beside the CLI
    }
  }
  const modelDir = values.model as string | undefined;
  const recorded = modelDir ? checkpointPlugins(path.join((await import('@yuan/model')).resolveModelDir(modelDir), 'config.json')) : [];
  const specs = [...(config?.plugins ?? []), ...recorded, ...((values.plugin as string[] | undefined) ?? [])];
  const seen = new Set<string>();
  for (const spec of specs) {
    const key = spec.startsWith('.') ? path.resolve(spec) : spec;
    if (seen.has(key)) continue;
    seen.add(key);
    await registerPluginModules(registry, [spec], process.cwd());
  }
  return registry.freeze();
}

/**
 * The base model folder of a PEFT adapter (`base_model_name_or_path` in its adapter_config.json) when it names a
 * folder on this machine; otherwise a usage error asking for --model.
 */
async function adapterBase(peft: string): Promise<string> {
  const { ADAPTER_CONFIG, resolveAdapterDir } = await import('@yuan/model');
  const file = path.join(resolveAdapterDir(peft), ADAPTER_CONFIG);
  let base: unknown;
  try {
    base = (JSON.parse(readFileSync(file, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
  } catch {
    base = undefined;
  }
  if (typeof base === 'string' && existsSync(path.join(base, 'config.json'))) return base;
  const named = typeof base === 'string' ? ` (its base_model_name_or_path ${JSON.stringify(base)} is not a model folder here)` : '';
  throw new YuanError('usage', `give --model DIR, the base model of the adapter ${peft}${named}`);
}

/**
 * The model a command runs: a checkpoint or training-run folder (`--model DIR`, with --set overrides of e.g. attention
 * options) or a freshly initialised preset (`--preset NAME`, seeded by --seed). Selects the tensor backend first.
 * With `--peft DIR` a PEFT adapter is read and attached (the model then owns it); without --model or --preset its
 * base is the adapter's `base_model_name_or_path`. `note` gets the one-line note naming checkpoint tensors the model
 * does not use (default: stderr).
 */
export async function openModel(values: Record<string, unknown>, registry: PluginRegistry, note: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<YuanModel> {
  const { adapterLookup, attentionLookup, loadAdapter, loadCheckpoint, resolveModelDir, YuanModel } = await import('@yuan/model');
  const { initBackend } = await import('@yuan/tensor');
  await initBackend(values.backend as string | undefined);
  const peft = values.peft as string | undefined;
  const dir = (values.model as string | undefined) ?? (peft && !values.preset && !values.config ? await adapterBase(peft) : undefined);
  let model: YuanModel;
  if (dir) {
    model = await loadCheckpoint(resolveModelDir(dir), attentionLookup(registry), setLayer(values), { onIgnored: (line) => note(line) });
  } else {
    if (!values.preset && !values.config) throw new YuanError('usage', 'give --model DIR (a checkpoint) or --preset NAME (a freshly initialised model)');
    const config = loadConfig(values);
    model = YuanModel.init(config, attentionLookup(registry)(config.attention.name), numberOption(values, 'seed', 0, { int: true }));
  }
  if (peft) {
    try {
      await loadAdapter(model, peft, adapterLookup(registry));
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return model;
}

/**
 * The tokenizer of `--tokenizer SPEC` (a registered name such as `bytes`, `NAME:PATH`, or a file a tokenizer plugin
 * reads, such as `tokenizer.model`), else the one the model's config names.
 */
export async function openTokenizer(registry: PluginRegistry, flag: string | undefined, config?: YuanConfig): Promise<Tokenizer> {
  if (flag) return openRegisteredTokenizer(registry, flag);
  if (config && (config.tokenizer.path || !registry.list('tokenizer').some((p) => p.name === config.tokenizer.name && (p as { fileExtensions?: unknown }).fileExtensions))) {
    return openRegisteredTokenizer(registry, config.tokenizer);
  }
  throw new YuanError('usage', 'this model has no built-in tokenizer: give --tokenizer FILE.model (or use --prompt-ids)');
}

/** The config with `--plugin` modules added to its `plugins:` (absolute paths), so a checkpoint records every plugin it needs. */
export function withPluginFlags(config: YuanConfig, values: Record<string, unknown>): YuanConfig {
  const extra = ((values.plugin as string[] | undefined) ?? []).map((p) => (p.startsWith('.') || path.isAbsolute(p) ? path.resolve(p) : p));
  return extra.length ? { ...config, plugins: [...new Set([...config.plugins, ...extra])] } : config;
}

/** The file of the module a registered plugin came from (for workers that must import it themselves). */
export function pluginModuleFile(registry: PluginRegistry, kind: string, name: string): string {
  const source = registry.sourceOf(kind, name);
  return resolvePluginModule(source, source.startsWith('@yuan/') ? CLI_DIR : process.cwd());
}
