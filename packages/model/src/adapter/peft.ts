import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, writeAtomic, YuanError, type ParameterSpec, type PluginRegistry } from '@yuan/core';
import { openSafetensors, writeSafetensors, type FloatDType, type TensorAdapterPlugin } from '@yuan/tensor';
import type { YuanModel } from '../model.js';
import { modelParameters } from '../parameters.js';
import { listCheckpoints } from '../run-folder.js';
import { AdapterModule } from './module.js';

/** PEFT's adapter files: the config, the weights, and the prefix of every tensor name (a PeftModel over a causal LM). */
export const ADAPTER_CONFIG = 'adapter_config.json';
/** PEFT's adapter weights file. */
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

/** Finds the adapter plugin that reads a PEFT `peft_type` (such as `LORA`) among the registered ones. */
export type AdapterLookup = (peftType: string) => TensorAdapterPlugin<unknown>;

/** Looks adapter plugins up by PEFT `peft_type` in a registry; an unknown type names those that are registered. */
export function adapterLookup(registry: PluginRegistry): AdapterLookup {
  return (peftType) => {
    const all = registry.list('adapter') as unknown as TensorAdapterPlugin<unknown>[];
    const found = all.find((p) => p.peftType === peftType);
    if (!found) {
      const known = all.map((p) => `${p.peftType} (${p.name})`).join(', ') || 'none';
      throw new YuanError(
        'adapter',
        `no adapter plugin reads PEFT peft_type ${JSON.stringify(peftType)} (registered: ${known})`,
      );
    }
    return found;
  };
}

/**
 * Writes an adapter's PEFT files into an existing folder: adapter_config.json (`plugin.toPeftConfig`; `base` is the
 * base model's folder, recorded as `base_model_name_or_path`) and adapter_model.safetensors with PEFT's tensor names
 * (`base_model.model.` + the adapter's parameter names, shapes from `specs`), F32 unless `dtype` says otherwise.
 */
export async function writeAdapterFiles(
  folder: string,
  plugin: TensorAdapterPlugin<unknown>,
  options: unknown,
  specs: readonly ParameterSpec[],
  weights: ReadonlyMap<string, Float32Array>,
  base: string | null,
  dtype?: FloatDType,
): Promise<void> {
  const tensors = specs.map((s) => {
    const data = weights.get(s.name);
    if (!data) throw new YuanError('adapter', `cannot write the adapter: no weights for ${s.name}`);
    return { name: `${PREFIX}${s.name}`, shape: s.shape, data };
  });
  await writeFile(
    path.join(folder, ADAPTER_CONFIG),
    `${JSON.stringify(plugin.toPeftConfig(options, base), null, 2)}\n`,
  );
  await writeSafetensors(path.join(folder, ADAPTER_WEIGHTS), tensors, { dtype, metadata: { format: 'pt' } });
}

/** Writes an adapter as a PEFT folder (see `writeAdapterFiles`), atomically: an existing folder is replaced whole or not at all. */
export async function saveAdapter(
  dir: string,
  adapter: AdapterModule,
  base: string | null,
  dtype?: FloatDType,
): Promise<void> {
  const weights = await adapter.weights();
  await writeAtomic(dir.replace(/\/+$/, ''), async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeAdapterFiles(tmp, adapter.plugin, adapter.options, adapter.specs, weights, base, dtype);
  });
}

/** What a PEFT adapter folder holds, read without a model. */
export interface AdapterFiles {
  plugin: TensorAdapterPlugin<unknown>;
  /** The plugin's options from adapter_config.json. */
  options: Record<string, unknown>;
  /** Tensors by name without PEFT's `base_model.model.` prefix, as float32, with their shapes. */
  weights: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /** `base_model_name_or_path`, when it is a string. */
  base?: string;
}

/**
 * Reads a PEFT adapter folder: adapter_config.json (its `peft_type` picks the plugin through `lookup`, which turns the
 * rest into options and refuses settings it does not implement) and adapter_model.safetensors (F32, F16 or BF16).
 * Errors (YuanError 'adapter', one line naming the file): a missing folder or file, bad JSON, a tensor name without
 * PEFT's `base_model.model.` prefix, an unreadable dtype.
 */
export async function readAdapterFiles(dir: string, lookup: AdapterLookup): Promise<AdapterFiles> {
  if (!existsSync(dir)) throw new YuanError('adapter', `adapter folder not found: ${dir}`);
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgFile))
    throw new YuanError(
      'adapter',
      `${dir}: no ${ADAPTER_CONFIG} (expected a PEFT adapter folder, or a training run folder with adapter checkpoints)`,
    );
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(cfgFile, 'utf8'));
  } catch (e) {
    throw new YuanError('adapter', `${cfgFile}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new YuanError('adapter', `${cfgFile}: not a JSON object`);
  if (typeof json.peft_type !== 'string') throw new YuanError('adapter', `${cfgFile}: has no peft_type`);
  const plugin = lookup(json.peft_type);
  const options = plugin.fromPeftConfig(json, cfgFile) as Record<string, unknown>;
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) {
    const bin = existsSync(path.join(dir, 'adapter_model.bin'))
      ? ' (adapter_model.bin is a pickle, which yuan does not read: save with safe_serialization=True)'
      : '';
    throw new YuanError('adapter', `${dir}: no ${ADAPTER_WEIGHTS}${bin}`);
  }
  const st = await openSafetensors(file);
  const weights = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  try {
    for (const [name, entry] of st.entries) {
      if (!name.startsWith(PREFIX))
        throw new YuanError(
          'adapter',
          `${file}: tensor ${name} does not start with PEFT's ${PREFIX} (not a PEFT adapter of a causal LM)`,
        );
      if (!entry.readable)
        throw new YuanError(
          'adapter',
          `${file}: tensor ${name} has dtype ${entry.dtype}; yuan reads adapters as F32, F16 or BF16`,
        );
      weights.set(name.slice(PREFIX.length), await st.read(name));
      shapes.set(name.slice(PREFIX.length), entry.shape);
    }
  } finally {
    await st.close();
  }
  return {
    plugin,
    options,
    weights,
    shapes,
    ...(typeof json.base_model_name_or_path === 'string' ? { base: json.base_model_name_or_path } : {}),
  };
}

/**
 * The adapter of a PEFT folder for a base model of `baseSpecs`: every tensor must be one the plugin lists for this base
 * and these options, with its exact shape (a YuanError 'adapter' naming the tensor otherwise).
 */
export function adapterFromFiles(
  files: AdapterFiles,
  baseSpecs: readonly ParameterSpec[],
  source: string,
): AdapterModule {
  let adapter: AdapterModule;
  try {
    adapter = AdapterModule.fromWeights(files.plugin, files.options, baseSpecs, files.weights, source);
  } catch (e) {
    if (e instanceof ConfigError)
      throw new YuanError('adapter', `${source}: ${e.message.replace(/^invalid config: /, '')}`);
    throw e;
  }
  for (const s of adapter.specs) {
    const shape = files.shapes.get(s.name);
    if (shape && shape.join(',') !== s.shape.join(',')) {
      adapter.dispose();
      throw new YuanError(
        'adapter',
        `${source}: ${s.name} has shape [${shape}] but this base model implies [${s.shape}]`,
      );
    }
  }
  return adapter;
}

/** A PEFT adapter folder, or for a training run folder (no adapter_config.json, checkpoint-N inside) its newest complete checkpoint. */
export function resolveAdapterDir(dir: string): string {
  if (existsSync(path.join(dir, ADAPTER_CONFIG))) return dir;
  const checkpoints = listCheckpoints(dir);
  return checkpoints.length ? checkpoints[checkpoints.length - 1] : dir;
}

/**
 * Reads the PEFT adapter in `dir` (a PEFT folder or a run folder of adapter checkpoints, see `resolveAdapterDir`) and
 * attaches it to `model`, which then owns it. Returns the adapter. Errors as `readAdapterFiles` and
 * `adapterFromFiles`, and an adapter that does not fit the model.
 */
export async function loadAdapter(model: YuanModel, dir: string, lookup: AdapterLookup): Promise<AdapterModule> {
  const folder = resolveAdapterDir(dir);
  const files = await readAdapterFiles(folder, lookup);
  const adapter = adapterFromFiles(
    files,
    modelParameters(model.config, model.attention),
    path.join(folder, ADAPTER_WEIGHTS),
  );
  try {
    model.attachAdapter(adapter);
  } catch (e) {
    adapter.dispose();
    throw e;
  }
  return adapter;
}
