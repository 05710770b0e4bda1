import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applySet,
  deepMerge,
  getPreset,
  openTokenizer as openRegisteredTokenizer,
  PluginRegistry,
  pluginSource,
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
 * The packages whose plugins are built in. They are loaded exactly as a third-party plugin package is (the `plugins`
 * each one exports, registered under the package's name), resolved from the CLI's own installation. `tensors` marks
 * the ones that load TensorFlow.js: config resolution (presets) loads only the others.
 */
const BUILTIN_PLUGIN_PACKAGES: readonly { spec: string; tensors?: true }[] = [
  { spec: '@yuan/core' }, // presets
  { spec: '@yuan/tokenizer' },
  { spec: '@yuan/plan' }, // partitioners, schedules
  { spec: '@yuan/comm' }, // transports
  { spec: '@yuan/eval' }, // evaluators, the openai model adapter
  { spec: '@yuan/data-filter' },
  { spec: '@yuan/tensor', tensors: true }, // backends (with @yuan/tensor-native's where installed)
  { spec: '@yuan/model', tensors: true }, // attention mha, the local model adapter
  { spec: '@yuan/attention-lfa', tensors: true },
  { spec: '@yuan/attention-lpa', tensors: true },
  { spec: '@yuan/attention-family', tensors: true }, // gqa, mla, based, landmark
  { spec: '@yuan/quantize', tensors: true }, // quantizers (rtn, gptq)
];

/**
 * The sources (`PluginRegistry.sourceOf`) of the built-in plugin packages. `attentionLookup` prefers the attention
 * plugins from any other source (the ones the user named) when recognizing a checkpoint whose config names none.
 */
export const BUILTIN_SOURCES: readonly string[] = BUILTIN_PLUGIN_PACKAGES.map((b) => b.spec);

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
    layer.plugins = layer.plugins.map((p) =>
      typeof p === 'string' && p.startsWith('.') ? path.resolve(path.dirname(file), p) : p,
    );
  }
  return layer;
}

/** The --config file and --set assignments as one layer (merged over a checkpoint's own config). */
export function overrideLayer(values: Record<string, unknown>): JsonObject {
  return deepMerge(values.config ? configFileLayer(values.config as string) : {}, setLayer(values));
}

/**
 * Resolves defaults < --preset < --config < --set (< `flags`, layers a command makes of its flags) into a validated
 * config. The preset is a registry lookup (kind `preset`) in a registry of the built-in packages that load no
 * TensorFlow.js (core's presets among them) and the plugin modules named by `--plugin` and by the file's or `--set`'s
 * `plugins:`, so a plugin package can ship presets.
 * Errors: an unknown preset (listing the registered ones), a plugin module that fails to load, an invalid config.
 */
export async function loadConfig(
  values: Record<string, unknown>,
  fallbackPreset?: string,
  ...flags: JsonObject[]
): Promise<YuanConfig> {
  const presetName = (values.preset as string | undefined) ?? fallbackPreset;
  const file = values.config ? configFileLayer(values.config as string) : undefined;
  const set = setLayer(values);
  const layers: JsonObject[] = [];
  if (presetName) {
    const named = [file?.plugins, set.plugins].flatMap((p) =>
      Array.isArray(p) ? p.filter((s): s is string => typeof s === 'string') : [],
    );
    const { registry } = await buildRegistry([...named, ...pluginFlags(values)], { tensors: false });
    layers.push(getPreset(presetName, registry).config);
  }
  if (file) layers.push(file);
  layers.push(set);
  return resolveConfig(...layers, ...flags);
}

/** The `--plugin` flags. */
function pluginFlags(values: Record<string, unknown>): string[] {
  return (values.plugin as string[] | undefined) ?? [];
}

/**
 * A frozen registry of the built-in packages (`tensors: false`: those that load no TensorFlow.js) and the plugin
 * modules `specs` (package names resolved from the working directory, paths), with the modules it was built from. A
 * module reached twice (by name and by path) registers once.
 */
async function buildRegistry(
  specs: readonly string[],
  options: { tensors: boolean },
): Promise<{ registry: PluginRegistry; modules: { spec: string; file: string }[] }> {
  const registry = new PluginRegistry();
  const modules: { spec: string; file: string }[] = [];
  const add = async (spec: string, baseDir: string) => {
    const file = resolvePluginModule(spec, baseDir);
    if (modules.some((m) => m.file === file)) return;
    await registerPluginModules(registry, [spec], baseDir);
    modules.push({ spec: pluginSource(spec, baseDir), file });
  };
  for (const builtin of BUILTIN_PLUGIN_PACKAGES)
    if (options.tensors || !builtin.tensors) await add(builtin.spec, CLI_DIR);
  for (const spec of specs) await add(spec, process.cwd());
  return { registry: registry.freeze(), modules };
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
 * Every choice the command makes by name (attention, tokenizer, backend, transport, ...) is a lookup in it.
 * Errors: a module that cannot be found or loaded, has no well-formed `plugins` export, or registers a name twice.
 */
export async function loadRegistry(values: Record<string, unknown>, config?: YuanConfig): Promise<PluginRegistry> {
  const modelDir = values.model as string | undefined;
  const recorded = modelDir
    ? checkpointPlugins(path.join((await import('@yuan/model')).resolveModelDir(modelDir), 'config.json'))
    : [];
  const { registry, modules } = await buildRegistry([...(config?.plugins ?? []), ...recorded, ...pluginFlags(values)], {
    tensors: true,
  });
  registryModuleFiles.set(registry, modules);
  return registry;
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
  const named =
    typeof base === 'string' ? ` (its base_model_name_or_path ${JSON.stringify(base)} is not a model folder here)` : '';
  throw new YuanError('usage', `give --model DIR, the base model of the adapter ${peft}${named}`);
}

/** Whether a checkpoint folder's config.json declares a `quantization_config` (weights in the GPTQ layout). */
function isQuantizedFolder(dir: string): boolean {
  try {
    const hf = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { quantization_config?: unknown };
    return typeof hf.quantization_config === 'object' && hf.quantization_config !== null;
  } catch {
    return false;
  }
}

/**
 * The model a command runs: a checkpoint or training-run folder (`--model DIR`, with --set overrides of e.g. attention
 * options) or a freshly initialised preset (`--preset NAME`, seeded by --seed). Selects the tensor backend (a backend
 * plugin of `registry`) first.
 * `note` gets the one-line note naming checkpoint tensors the model does not use (default: stderr). With `inference`
 * (generation, serving), and always for a quantized folder, weights stay in their stored formats and decode natively
 * where the backend allows (`loadInferenceModel`);
 * a preset's random weights are then made in `--weights FORMAT` (default fp32). With `--peft DIR` a PEFT adapter is
 * read and attached (the model then owns it, and runs on TensorFlow.js: the native decoder runs no adapters); without
 * --model or --preset its base is the adapter's `base_model_name_or_path`.
 */
export async function openModel(
  values: Record<string, unknown>,
  registry: PluginRegistry,
  note: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  inference = false,
): Promise<YuanModel> {
  const {
    adapterLookup,
    attentionLookup,
    loadAdapter,
    loadCheckpoint,
    loadInferenceModel,
    initInferenceModel,
    resolveModelDir,
    YuanModel,
  } = await import('@yuan/model');
  const { initBackend } = await import('@yuan/tensor');
  await initBackend(values.backend as string | undefined, registry);
  const peft = values.peft as string | undefined;
  const dir =
    (values.model as string | undefined) ??
    (peft && !values.preset && !values.config ? await adapterBase(peft) : undefined);
  const format = values.weights as string | undefined;
  if (format !== undefined && (!inference || dir))
    throw new YuanError(
      'usage',
      '--weights FORMAT applies to a --preset model in yuan generate and yuan serve (a checkpoint keeps its stored format)',
    );
  const open = async (): Promise<YuanModel> => {
    if (dir) {
      const onIgnored = (line: string) => note(line);
      // the weight formats tried on each stored weight are the registry's (built-in and plugins), not a list of its own
      const formats = registry.list('weight-format') as unknown as import('@yuan/tensor').TensorWeightFormat[];
      // a quantized folder (GPTQ layout) has no float weights to train or serve from: it always opens through the
      // weight-format loader, whose tfjs parameters (forward with caches, serving) are its dequantized weights
      const folder = resolveModelDir(dir);
      if (inference || isQuantizedFolder(folder))
        return loadInferenceModel(folder, attentionLookup(registry, BUILTIN_SOURCES), setLayer(values), {
          onIgnored,
          formats,
        });
      return loadCheckpoint(folder, attentionLookup(registry, BUILTIN_SOURCES), setLayer(values), { onIgnored });
    }
    if (!values.preset && !values.config)
      throw new YuanError('usage', 'give --model DIR (a checkpoint) or --preset NAME (a freshly initialised model)');
    const config = await loadConfig(values);
    const attention = attentionLookup(registry, BUILTIN_SOURCES)(config.attention.name);
    const seed = numberOption(values, 'seed', 0, { int: true });
    if (!inference) return YuanModel.init(config, attention, seed);
    const plugin =
      format === undefined
        ? undefined
        : (registry.get('weight-format', format) as unknown as import('@yuan/tensor').TensorWeightFormat);
    return initInferenceModel(config, attention, seed, plugin ? { format: plugin } : {});
  };
  const model = await open();
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
export async function openTokenizer(
  registry: PluginRegistry,
  flag: string | undefined,
  config?: YuanConfig,
): Promise<Tokenizer> {
  if (flag) return openRegisteredTokenizer(registry, flag);
  // the model's own tokenizer opens without a flag when the config gives its file, or when its plugin reads no file
  if (config && (config.tokenizer.path || !registry.get('tokenizer', config.tokenizer.name).fileExtensions)) {
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

/** The file of the module a registered plugin came from (for workers that must import it themselves); undefined for one registered without a module. */
export function pluginModuleFile(registry: PluginRegistry, kind: string, name: string): string | undefined {
  const source = registry.sourceOf(kind, name);
  return registryModules(registry).find((m) => m.spec === source)?.file;
}
