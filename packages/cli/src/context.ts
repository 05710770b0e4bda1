import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applySet,
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
const BUILTIN_PLUGIN_PACKAGES = [
  '@yuan/model',
  '@yuan/tokenizer',
  '@yuan/attention-lfa',
  '@yuan/attention-lpa',
  '@yuan/eval',
  '@yuan/data-filter',
  '@yuan/quantize',
  '@yuan/plan',
  '@yuan/comm',
];

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

/** The --set assignments of parsed options as one config layer. */
export function setLayer(values: Record<string, unknown>): JsonObject {
  return ((values.set as string[] | undefined) ?? []).reduce<JsonObject>((acc, s) => applySet(acc, s), {});
}

/** A config file layer with relative `plugins:` paths resolved against the file's folder. */
function configFileLayer(file: string): JsonObject {
  const layer = readConfigFile(file);
  if (Array.isArray(layer.plugins)) {
    layer.plugins = layer.plugins.map((p) =>
      typeof p === 'string' && p.startsWith('.') ? path.resolve(path.dirname(file), p) : p,
    );
  }
  return layer;
}

/** Resolves defaults < --preset < --config < --set into a validated config. */
export function loadConfig(values: Record<string, unknown>, fallbackPreset?: string): YuanConfig {
  const presetName = (values.preset as string | undefined) ?? fallbackPreset;
  const layers: JsonObject[] = [];
  if (presetName) layers.push(getPreset(presetName).config);
  if (values.config) layers.push(configFileLayer(values.config as string));
  layers.push(setLayer(values));
  return resolveConfig(...layers);
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

/** The plugin modules each registry `loadRegistry` built was loaded from (spec and file), for ranks that rebuild it. */
const registryModuleFiles = new WeakMap<PluginRegistry, { spec: string; file: string }[]>();

/**
 * The plugin modules `loadRegistry` loaded into `registry`, as specifier (the plugins' source) and resolved file: what
 * thread and process ranks import to rebuild it (`modules` of `trainParallel`).
 */
export function registryModules(registry: PluginRegistry): { spec: string; file: string }[] {
  return registryModuleFiles.get(registry) ?? [];
}

/**
 * The plugin registry of a run: the built-in packages, then the plugin modules named by the config's `plugins:`, by a
 * checkpoint's recorded plugins (`--model DIR`) and by `--plugin` flags; frozen, so the run's plan cannot change.
 * Errors: a module that cannot be found or loaded, exports no plugin, or registers a name twice (one line each).
 */
export async function loadRegistry(values: Record<string, unknown>, config?: YuanConfig): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  const modules: { spec: string; file: string }[] = [];
  for (const spec of BUILTIN_PLUGIN_PACKAGES) {
    try {
      await registerPluginModules(registry, [spec], CLI_DIR);
      modules.push({ spec, file: resolvePluginModule(spec, CLI_DIR) });
    } catch (e) {
      if (!isMissingOptional(spec, e)) throw e; // the parallel packages are optional beside the CLI
    }
  }
  const modelDir = values.model as string | undefined;
  const recorded = modelDir
    ? checkpointPlugins(path.join((await import('@yuan/model')).resolveModelDir(modelDir), 'config.json'))
    : [];
  const specs = [...(config?.plugins ?? []), ...recorded, ...((values.plugin as string[] | undefined) ?? [])];
  const seen = new Set<string>();
  for (const spec of specs) {
    const key = spec.startsWith('.') ? path.resolve(spec) : spec;
    if (seen.has(key)) continue;
    seen.add(key);
    await registerPluginModules(registry, [spec], process.cwd());
    modules.push({
      spec: spec.startsWith('.') || path.isAbsolute(spec) ? path.resolve(spec) : spec,
      file: resolvePluginModule(spec, process.cwd()),
    });
  }
  registryModuleFiles.set(registry, modules);
  return registry.freeze();
}

/**
 * The model a command runs: a checkpoint or training-run folder (`--model DIR`, with --set overrides of e.g. attention
 * options) or a freshly initialised preset (`--preset NAME`, seeded by --seed). Selects the tensor backend first.
 * `note` gets the one-line note naming checkpoint tensors the model does not use (default: stderr). With `inference`
 * (generation), weights stay in their stored formats and decode natively where the backend allows (`loadInferenceModel`);
 * a preset's random weights are then made in `--weights FORMAT` (default fp32).
 */
export async function openModel(
  values: Record<string, unknown>,
  registry: PluginRegistry,
  note: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  inference = false,
): Promise<YuanModel> {
  const { attentionLookup, loadCheckpoint, loadInferenceModel, initInferenceModel, resolveModelDir, YuanModel } =
    await import('@yuan/model');
  const { initBackend } = await import('@yuan/tensor');
  await initBackend(values.backend as string | undefined);
  const dir = values.model as string | undefined;
  const format = values.weights as string | undefined;
  if (format !== undefined && (!inference || dir))
    throw new YuanError(
      'usage',
      '--weights FORMAT applies to a --preset model in yuan generate (a checkpoint keeps its stored format)',
    );
  if (dir) {
    const load = inference ? loadInferenceModel : loadCheckpoint;
    return load(resolveModelDir(dir), attentionLookup(registry), setLayer(values), { onIgnored: (line) => note(line) });
  }
  if (!values.preset && !values.config)
    throw new YuanError('usage', 'give --model DIR (a checkpoint) or --preset NAME (a freshly initialised model)');
  const config = loadConfig(values);
  const attention = attentionLookup(registry)(config.attention.name);
  const seed = numberOption(values, 'seed', 0, { int: true });
  if (!inference) return YuanModel.init(config, attention, seed);
  const plugin =
    format === undefined
      ? undefined
      : (registry.get('weight-format', format) as unknown as import('@yuan/tensor').TensorWeightFormat);
  return initInferenceModel(config, attention, seed, plugin ? { format: plugin } : {});
}

/**
 * The tokenizer of `--tokenizer SPEC` (a registered name such as `bytes`, `NAME:PATH`, or a file a tokenizer plugin
 * reads, such as `tokenizer.model`), else the one the model's config names.
 */
export async function openTokenizer(
  registry: PluginRegistry,
  flag: string | undefined,
  config?: YuanConfig,
): Promise<Tokenizer> {
  if (flag) return openRegisteredTokenizer(registry, flag);
  if (
    config &&
    (config.tokenizer.path ||
      !registry
        .list('tokenizer')
        .some((p) => p.name === config.tokenizer.name && (p as { fileExtensions?: unknown }).fileExtensions))
  ) {
    return openRegisteredTokenizer(registry, config.tokenizer);
  }
  throw new YuanError(
    'usage',
    'this model has no built-in tokenizer: give --tokenizer FILE.model (or use --prompt-ids)',
  );
}

/** The config with `--plugin` modules added to its `plugins:` (absolute paths), so a checkpoint records every plugin it needs. */
export function withPluginFlags(config: YuanConfig, values: Record<string, unknown>): YuanConfig {
  const extra = ((values.plugin as string[] | undefined) ?? []).map((p) =>
    p.startsWith('.') || path.isAbsolute(p) ? path.resolve(p) : p,
  );
  return extra.length ? { ...config, plugins: [...new Set([...config.plugins, ...extra])] } : config;
}

/** The file of the module a registered plugin came from (for workers that must import it themselves). */
export function pluginModuleFile(registry: PluginRegistry, kind: string, name: string): string {
  const source = registry.sourceOf(kind, name);
  return resolvePluginModule(source, source.startsWith('@yuan/') ? CLI_DIR : process.cwd());
}
