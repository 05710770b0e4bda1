import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigError,
  recognizeAttention,
  resolveConfig,
  writeAtomic,
  YuanError,
  type AttentionSpec,
  type JsonObject,
  type ParameterSpec,
  type YuanConfig,
} from '@yuan/core';
import {
  openSafetensors,
  writeSafetensors,
  type FloatDType,
  type SafetensorsFile,
  type TensorAttentionPlugin,
  type TensorToWrite,
} from '@yuan/tensor';
import { YuanModel } from './model.js';
import { modelParameters } from './parameters.js';

/**
 * Resolves an attention plugin by name (the registry's `get('attention', name)`); `all`, when given, lists every
 * registered one, which checkpoint import asks to `recognize` the weights of a checkpoint whose config names none;
 * `preferred`, when given, names those asked first (the user's plugins over the built-in ones; `recognizeAttention`).
 */
export type AttentionLookup = ((name: string) => TensorAttentionPlugin<unknown>) & {
  readonly all?: () => readonly TensorAttentionPlugin<unknown>[];
  readonly preferred?: () => ReadonlySet<string>;
};

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
export function configFromHf(
  hf: JsonObject,
  file: string,
  recognize?: (spec: AttentionSpec) => { name: string; options: Record<string, unknown> },
): YuanConfig {
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

/**
 * The HF config.json for a yuan config: the official keys (those YUAN's `yuan_hf_model.py` reads included), plus a
 * `yuan` section that records the plugins.
 */
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
    // the head is tied to the embeddings; lm_head.weight is written too, as a copy (see writeModelFiles)
    tie_word_embeddings: true,
    hidden_act: 'silu',
    // keys the official yuan_hf_model.py reads: a plain causal forward (no reset of positions or attention at <eod>,
    // no loss mask), so its eod/sep ids are unused
    use_flash_attention: false,
    causal_mask: true,
    reset_attention_mask: false,
    reset_position_ids: false,
    use_loss_mask: false,
    eod_token: null,
    sep_token: null,
    torch_dtype: 'float32',
    yuan: {
      preset: config.preset,
      attention: config.attention,
      tokenizer: config.tokenizer,
      ...(config.plugins.length ? { plugins: config.plugins } : {}),
    },
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
    if (files.length === 0)
      throw new YuanError('checkpoint', `${dir}: no model.safetensors, model-*.safetensors or index found`);
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
 * says so. As Hugging Face does, tensors the model does not use (I64 position ids, extra layers, any dtype) are
 * skipped and returned in `ignored` (`checkDerivedTensors` then takes out the tied head and the RoPE buffers it
 * checked); a missing needed tensor, a wrong shape or a needed tensor of a dtype yuan cannot read is an error.
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
      if (!file)
        throw new YuanError(
          'checkpoint',
          `config does not match the weights: ${dir} has no tensor ${name} (expected shape [${partShape}])`,
        );
      const entry = file.entries.get(name)!;
      if (entry.shape.join(',') !== partShape.join(',')) {
        throw new YuanError(
          'checkpoint',
          `config does not match the weights: ${name} has shape [${entry.shape}] but the config implies [${partShape}]`,
        );
      }
      if (!entry.readable)
        throw new YuanError(
          'checkpoint',
          `${file.path}: tensor ${name} has dtype ${entry.dtype}; yuan reads weights as F32, F16 or BF16`,
        );
      data.set(await file.read(name), i * sizeOf(partShape));
    }
    out.set(spec.name, data);
  }
  const ignored = [...where.keys()].filter((n) => !expected.has(n)).sort();
  return { weights: out, ignored };
}

const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';
const invFreqName = (layer: number): string => `model.layers.${layer}.self_attn.rotary_emb.inv_freq`;

/** RoPE's inverse frequencies 1 / base^(2i/d), i = 0..d/2−1, as in `ropeTables` of @yuan/tensor. */
function ropeInvFreq(headDim: number, base: number): Float32Array {
  return Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / Math.pow(base, (2 * i) / headDim));
}

/**
 * Checks the tensors that are not parameters but that exports write for Hugging Face loaders (see `writeModelFiles`)
 * and returns `ignored` without those it checked. `lm_head.weight` must equal `model.embed_tokens.weight` exactly
 * (yuan ties the head to the embeddings, so an untied head is an error rather than silently replaced); each layer's
 * `rotary_emb.inv_freq` (YUAN's persistent RoPE buffer, which its modeling file uses instead of rope_theta) must be
 * 1/base^(2i/d) for the config's rope_theta within 1% (an F16 or BF16 copy passes).
 */
async function checkDerivedTensors(
  files: SafetensorsFile[],
  config: YuanConfig,
  weights: Map<string, Float32Array>,
  ignored: string[],
): Promise<string[]> {
  const where = new Map<string, SafetensorsFile>();
  for (const f of files) for (const name of f.entries.keys()) where.set(name, f);
  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    const file = where.get(name)!;
    const entry = file.entries.get(name)!;
    if (entry.shape.join(',') !== shape.join(',')) {
      throw new YuanError(
        'checkpoint',
        `config does not match the weights: ${name} has shape [${entry.shape}] but the config implies [${shape}]`,
      );
    }
    if (!entry.readable)
      throw new YuanError(
        'checkpoint',
        `${file.path}: tensor ${name} has dtype ${entry.dtype}; yuan reads weights as F32, F16 or BF16`,
      );
    return file.read(name);
  };
  const { vocabSize, hiddenSize, numHeads, numLayers, ropeBase } = config.model;
  const checked = new Set<string>();
  if (where.has(LM_HEAD)) {
    const head = await read(LM_HEAD, [vocabSize, hiddenSize]);
    const embed = weights.get(EMBED)!;
    let differ = 0;
    let max = 0;
    for (let i = 0; i < head.length; i++) {
      if (head[i] === embed[i]) continue;
      differ++;
      max = Math.max(max, Math.abs(head[i] - embed[i]));
    }
    if (differ > 0) {
      throw new YuanError(
        'checkpoint',
        `${where.get(LM_HEAD)!.path}: ${LM_HEAD} differs from ${EMBED} in ${differ} values (max |difference| ${max}); yuan ties the output head to the embeddings and cannot load an untied head`,
      );
    }
    checked.add(LM_HEAD);
  }
  const headDim = hiddenSize / numHeads;
  const want = ropeInvFreq(headDim, ropeBase);
  for (let l = 0; l < numLayers; l++) {
    const name = invFreqName(l);
    if (!where.has(name)) continue;
    const got = await read(name, [headDim / 2]);
    if (got.some((v, i) => !(Math.abs(v - want[i]) <= 1e-2 * want[i]))) {
      const implied =
        got.length > 1 && got[1] > 0
          ? ` (it implies a base of ${Number(Math.pow(got[1], -headDim / 2).toPrecision(4))})`
          : '';
      throw new YuanError(
        'checkpoint',
        `config does not match the weights: ${name} is not RoPE with rope_theta ${ropeBase}${implied}; set rope_theta in config.json to the base the model was trained with`,
      );
    }
    checked.add(name);
  }
  return ignored.filter((n) => !checked.has(n));
}

/**
 * The shape of the weight a GPTQ-layout `<base>.qweight` stands for, when it is not the linear's [out, in]: LFA's Conv2d
 * weights are packed as [out, in·K] matrices, and `yuan quantize` records their shape ([out, in, K, 1]) in
 * `quantization_config.yuan.weightShapes` by name inside a layer (`self_attn.lf_gate.conv1.weight`). `quantization` is
 * config.json's `quantization_config`; `weight` the full name (`model.layers.3.self_attn.lf_gate.conv1.weight`).
 * Undefined when nothing is recorded for it. A recorded shape whose size is not `size` values is a one-line error.
 */
export function packedWeightShape(
  quantization: JsonObject | undefined,
  weight: string,
  size: number,
): readonly number[] | undefined {
  const shapes = (quantization?.yuan as JsonObject | undefined)?.weightShapes as JsonObject | undefined;
  const shape = shapes?.[weight.replace(/^model\.layers\.\d+\./, '')];
  if (shape === undefined) return undefined;
  if (!Array.isArray(shape) || shape.reduce((a: number, b) => a * (b as number), 1) !== size)
    throw new YuanError(
      'checkpoint',
      `quantization_config.yuan.weightShapes gives ${weight} the shape ${JSON.stringify(shape)}, which does not hold its ${size} packed values`,
    );
  return shape as number[];
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
 * the tensors it holds that the model does not use (`ignored`, see `ignoredTensorsNote`). Folders with or without
 * `lm_head.weight` load; when present it must equal the embeddings, and `rotary_emb.inv_freq` buffers must match
 * rope_theta (a one-line error otherwise).
 */
export async function readCheckpoint(
  dir: string,
  lookup: AttentionLookup,
  overrides: JsonObject = {},
): Promise<{
  config: YuanConfig;
  attention: TensorAttentionPlugin<unknown>;
  weights: Map<string, Float32Array>;
  ignored: string[];
}> {
  const cfgPath = path.join(dir, 'config.json');
  if (!existsSync(dir)) throw new YuanError('checkpoint', `model folder not found: ${dir}`);
  if (!existsSync(cfgPath))
    throw new YuanError('checkpoint', `${dir}: no config.json (expected a Hugging Face YUAN checkpoint folder)`);
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
      typeof named === 'string'
        ? { name: named, options: {} }
        : recognizeAttention(lookup.all?.() ?? [], layer0, spec, dir, lookup.preferred?.()),
    );
    if (Object.keys(overrides).length) config = resolveConfig(config as unknown as JsonObject, overrides);
    const attention = lookup(config.attention.name);
    const { weights, ignored } = await readWeights(files, modelParameters(config, attention), dir);
    return { config, attention, weights, ignored: await checkDerivedTensors(files, config, weights, ignored) };
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
 * q_proj/k_proj and up_proj/gate_proj split back out) into an existing folder. `weights` are by fused name, for every
 * spec of `modelParameters(config, attention)`. Besides the parameters it writes what today's loaders need to
 * reproduce yuan's logits through `from_pretrained`: `lm_head.weight`, a copy of the tied embeddings (transformers 5
 * ties only for models that declare `_tied_weights_keys`, which YUAN's modeling file does not, and otherwise leaves a
 * missing head random), and each layer's `self_attn.rotary_emb.inv_freq` in F32 (a persistent buffer of YUAN's
 * file that transformers 5 would otherwise leave uninitialised; it also carries a rope_theta the file ignores).
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
    return parts.map((name, i): TensorToWrite => ({ name, shape: partShape, data: data.subarray(i * n, (i + 1) * n) }));
  });
  const { vocabSize, hiddenSize, numHeads, numLayers, ropeBase } = config.model;
  const embed = tensors.find((t) => t.name === EMBED);
  if (embed) tensors.push({ name: LM_HEAD, shape: [vocabSize, hiddenSize], data: embed.data });
  const invFreq = ropeInvFreq(hiddenSize / numHeads, ropeBase);
  for (let l = 0; l < numLayers; l++)
    tensors.push({ name: invFreqName(l), shape: [invFreq.length], data: invFreq, dtype: 'F32' });
  await writeFile(path.join(folder, 'config.json'), `${JSON.stringify(configToHf(config), null, 2)}\n`);
  await writeSafetensors(path.join(folder, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
}

/**
 * Writes a whole model as a Hugging Face YUAN 2.0 checkpoint folder (see `writeModelFiles`), atomically and durably:
 * an existing checkpoint is replaced whole or not at all.
 */
export async function saveCheckpoint(
  dir: string,
  model: YuanModel,
  options: { dtype?: FloatDType; extraFiles?: Record<string, string> } = {},
): Promise<void> {
  if (!model.isWhole) throw new YuanError('checkpoint', 'saveCheckpoint needs the whole model, not a part');
  const weights = await model.weights();
  await writeAtomic(dir.replace(/\/+$/, ''), async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeModelFiles(tmp, model.config, model.specs, weights, options.dtype);
    for (const [name, text] of Object.entries(options.extraFiles ?? {})) await writeFile(path.join(tmp, name), text);
  });
}
