import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, recognizeAttention, resolveConfig, writeAtomic, YuanError, type AttentionSpec, type JsonObject, type ParameterSpec, type YuanConfig } from '@yuan/core';
import { openSafetensors, writeSafetensors, type FloatDType, type SafetensorsFile, type TensorAttentionPlugin } from '@yuan/tensor';
import { YuanModel } from './model.js';
import { modelParameters } from './parameters.js';

/**
 * Resolves an attention plugin by name (the registry's `get('attention', name)`); `all`, when given, lists every
 * registered one, which checkpoint import asks to `recognize` the weights of a checkpoint whose config names none.
 */
export type AttentionLookup = ((name: string) => TensorAttentionPlugin<unknown>) & { readonly all?: () => readonly TensorAttentionPlugin<unknown>[] };

function need(hf: JsonObject, key: string, file: string): number {
  const v = hf[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${file}: ${key} = ${JSON.stringify(v)}; expected a positive integer`);
  }
  return v;
}

/**
 * Maps a Hugging Face YUAN `config.json` (plus our `yuan` section, if any) to a yuan config. Without a recorded
 * `yuan.attention`, `recognize` names the attention plugin from the first layer's spec (see `recognizeAttention` of
 * @yuan/core); without either it is a one-line error.
 */
export function configFromHf(hf: JsonObject, file: string, recognize?: (spec: AttentionSpec) => { name: string; options: Record<string, unknown> }): YuanConfig {
  const yuan = (hf.yuan ?? {}) as JsonObject;
  const model = {
    vocabSize: need(hf, 'vocab_size', file),
    hiddenSize: need(hf, 'hidden_size', file),
    numLayers: need(hf, 'num_hidden_layers', file),
    numHeads: need(hf, 'num_attention_heads', file),
    ffnSize: need(hf, 'intermediate_size', file),
    maxPositions: hf.max_position_embeddings ?? hf.model_max_length ?? 8192,
    rmsNormEps: hf.rms_norm_eps ?? 1e-6,
    ropeBase: hf.rope_theta ?? 10000,
    initStd: hf.initializer_range ?? 0.02,
  };
  const spec: AttentionSpec = {
    hiddenSize: model.hiddenSize,
    numHeads: model.numHeads,
    headDim: model.hiddenSize / model.numHeads,
    layerIndex: 0,
    numLayers: model.numLayers,
    ropeBase: model.ropeBase as number,
    rmsNormEps: model.rmsNormEps as number,
    initStd: model.initStd as number,
  };
  let attention = yuan.attention as JsonObject | undefined;
  if (!attention) {
    if (!recognize) throw new ConfigError(`${file}: names no attention plugin (no yuan.attention); set attention.name`);
    attention = recognize(spec) as unknown as JsonObject;
  }
  return resolveConfig({
    preset: (yuan.preset as string) ?? 'custom',
    model,
    attention,
    tokenizer: (yuan.tokenizer as JsonObject | undefined) ?? { name: 'sentencepiece' },
    ...(Array.isArray(yuan.plugins) ? { plugins: yuan.plugins } : {}),
  });
}

/** The HF config.json for a yuan config (the official keys, plus a `yuan` section that records the plugins). */
export function configToHf(config: YuanConfig): JsonObject {
  const m = config.model;
  return {
    model_type: 'yuan',
    architectures: ['YuanForCausalLM'],
    vocab_size: m.vocabSize,
    hidden_size: m.hiddenSize,
    intermediate_size: m.ffnSize,
    num_hidden_layers: m.numLayers,
    num_attention_heads: m.numHeads,
    rms_norm_eps: m.rmsNormEps,
    max_position_embeddings: m.maxPositions,
    model_max_length: m.maxPositions,
    rope_theta: m.ropeBase,
    initializer_range: m.initStd,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    use_flash_attention: false,
    torch_dtype: 'float32',
    yuan: { preset: config.preset, attention: config.attention, tokenizer: config.tokenizer, ...(config.plugins.length ? { plugins: config.plugins } : {}) },
  };
}

async function openWeightFiles(dir: string): Promise<SafetensorsFile[]> {
  const index = path.join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = JSON.parse(await readFile(index, 'utf8')).weight_map;
    } catch (e) {
      throw new YuanError('checkpoint', `${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!map || typeof map !== 'object') throw new YuanError('checkpoint', `${index}: has no weight_map`);
    files = [...new Set(Object.values(map))].sort();
  } else if (existsSync(path.join(dir, 'model.safetensors'))) {
    files = ['model.safetensors'];
  } else {
    files = (await readdir(dir)).filter((f) => /^model-.*\.safetensors$/.test(f)).sort();
    if (files.length === 0) throw new YuanError('checkpoint', `${dir}: no model.safetensors, model-*.safetensors or index found`);
  }
  const opened: SafetensorsFile[] = [];
  try {
    for (const f of files) opened.push(await openSafetensors(path.join(dir, f)));
  } catch (e) {
    await Promise.all(opened.map((o) => o.close()));
    throw e;
  }
  return opened;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Reads every parameter of `specs` from HF-named tensors, fusing parts (q_proj+k_proj, up_proj+gate_proj) where a spec
 * says so. As Hugging Face does, tensors the model does not use (`lm_head.weight` with tied embeddings,
 * `rotary_emb.inv_freq` buffers, I64 position ids, any dtype) are skipped and returned in `ignored`; a missing needed
 * tensor, a wrong shape or a needed tensor of a dtype yuan cannot read is an error.
 */
async function readWeights(
  files: SafetensorsFile[],
  specs: ParameterSpec[],
  dir: string,
): Promise<{ weights: Map<string, Float32Array>; ignored: string[] }> {
  const where = new Map<string, SafetensorsFile>();
  for (const f of files) for (const name of f.entries.keys()) where.set(name, f);
  const expected = new Set<string>();
  const out = new Map<string, Float32Array>();
  for (const spec of specs) {
    const parts = spec.parts ?? [spec.name];
    const partShape = [spec.shape[0] / parts.length, ...spec.shape.slice(1)];
    const data = new Float32Array(sizeOf(spec.shape));
    for (const [i, name] of parts.entries()) {
      expected.add(name);
      const file = where.get(name);
      if (!file) throw new YuanError('checkpoint', `config does not match the weights: ${dir} has no tensor ${name} (expected shape [${partShape}])`);
      const entry = file.entries.get(name)!;
      if (entry.shape.join(',') !== partShape.join(',')) {
        throw new YuanError('checkpoint', `config does not match the weights: ${name} has shape [${entry.shape}] but the config implies [${partShape}]`);
      }
      if (!entry.readable) throw new YuanError('checkpoint', `${file.path}: tensor ${name} has dtype ${entry.dtype}; yuan reads weights as F32, F16 or BF16`);
      data.set(await file.read(name), i * sizeOf(partShape));
    }
    out.set(spec.name, data);
  }
  const ignored = [...where.keys()].filter((n) => !expected.has(n)).sort();
  return { weights: out, ignored };
}

/** The one-line note naming the tensors a checkpoint holds that the model does not use (empty when there are none). */
export function ignoredTensorsNote(dir: string, ignored: readonly string[]): string {
  if (ignored.length === 0) return '';
  const shown = ignored.slice(0, 5).join(', ');
  return `${dir}: ignored ${ignored.length} tensor${ignored.length === 1 ? '' : 's'} the model does not use: ${shown}${ignored.length > 5 ? ` (+${ignored.length - 5} more)` : ''}`;
}

/**
 * Reads a Hugging Face YUAN 2.0 checkpoint folder (config.json + model.safetensors, or shards with an index) without
 * building a model: its config (with `overrides` merged), attention plugin, weights by fused name, and the names of
 * the tensors it holds that the model does not use (`ignored`, see `ignoredTensorsNote`).
 */
export async function readCheckpoint(
  dir: string,
  lookup: AttentionLookup,
  overrides: JsonObject = {},
): Promise<{ config: YuanConfig; attention: TensorAttentionPlugin<unknown>; weights: Map<string, Float32Array>; ignored: string[] }> {
  const cfgPath = path.join(dir, 'config.json');
  if (!existsSync(dir)) throw new YuanError('checkpoint', `model folder not found: ${dir}`);
  if (!existsSync(cfgPath)) throw new YuanError('checkpoint', `${dir}: no config.json (expected a Hugging Face YUAN checkpoint folder)`);
  let hf: JsonObject;
  try {
    hf = JSON.parse(await readFile(cfgPath, 'utf8'));
  } catch (e) {
    throw new YuanError('checkpoint', `${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const files = await openWeightFiles(dir);
  try {
    // the first layer's attention tensors, for the registered plugins to recognize when config.json names none
    const layer0 = new Map<string, readonly number[]>();
    for (const f of files) {
      for (const [name, entry] of f.entries) {
        const m = /^model\.layers\.0\.self_attn\.(.+)$/.exec(name);
        if (m) layer0.set(m[1], entry.shape);
      }
    }
    const named = (overrides.attention as JsonObject | undefined)?.name;
    let config = configFromHf(hf, cfgPath, (spec) =>
      typeof named === 'string' ? { name: named, options: {} } : recognizeAttention(lookup.all?.() ?? [], layer0, spec, dir),
    );
    if (Object.keys(overrides).length) config = resolveConfig(config as unknown as JsonObject, overrides);
    const attention = lookup(config.attention.name);
    const { weights, ignored } = await readWeights(files, modelParameters(config, attention), dir);
    return { config, attention, weights, ignored };
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
}

/** Options of `loadCheckpoint`. */
export interface LoadCheckpointOptions {
  /** Called with the one-line note (see `ignoredTensorsNote`) when the checkpoint holds tensors the model does not use. */
  onIgnored?: (note: string, ignored: readonly string[]) => void;
}

/** Loads a Hugging Face YUAN 2.0 checkpoint folder as a whole model (see `readCheckpoint`). */
export async function loadCheckpoint(
  dir: string,
  lookup: AttentionLookup,
  overrides: JsonObject = {},
  options: LoadCheckpointOptions = {},
): Promise<YuanModel> {
  const { config, attention, weights, ignored } = await readCheckpoint(dir, lookup, overrides);
  if (ignored.length) options.onIgnored?.(ignoredTensorsNote(dir, ignored), ignored);
  return YuanModel.fromWeights(config, attention, weights);
}

/**
 * Writes the Hugging Face YUAN files of a model (config.json, model.safetensors with official key names and shapes:
 * q_proj/k_proj and up_proj/gate_proj split back out, no lm_head since embeddings are tied) into an existing folder.
 * `weights` are by fused name, for every spec of `modelParameters(config, attention)`.
 */
export async function writeModelFiles(
  folder: string,
  config: YuanConfig,
  specs: readonly ParameterSpec[],
  weights: Map<string, Float32Array>,
  dtype?: FloatDType,
): Promise<void> {
  const tensors = specs.flatMap((spec) => {
    const data = weights.get(spec.name);
    if (!data) throw new YuanError('checkpoint', `cannot write the model: no weights for ${spec.name}`);
    const parts = spec.parts ?? [spec.name];
    const partShape = [spec.shape[0] / parts.length, ...spec.shape.slice(1)];
    const n = sizeOf(partShape);
    return parts.map((name, i) => ({ name, shape: partShape, data: data.subarray(i * n, (i + 1) * n) }));
  });
  await writeFile(path.join(folder, 'config.json'), `${JSON.stringify(configToHf(config), null, 2)}\n`);
  await writeSafetensors(path.join(folder, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
}

/**
 * Writes a whole model as a Hugging Face YUAN 2.0 checkpoint folder (see `writeModelFiles`), atomically and durably:
 * an existing checkpoint is replaced whole or not at all.
 */
export async function saveCheckpoint(dir: string, model: YuanModel, options: { dtype?: FloatDType; extraFiles?: Record<string, string> } = {}): Promise<void> {
  if (!model.isWhole) throw new YuanError('checkpoint', 'saveCheckpoint needs the whole model, not a part');
  const weights = await model.weights();
  await writeAtomic(dir.replace(/\/+$/, ''), async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeModelFiles(tmp, model.config, model.specs, weights, options.dtype);
    for (const [name, text] of Object.entries(options.extraFiles ?? {})) await writeFile(path.join(tmp, name), text);
  });
}
