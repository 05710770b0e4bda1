import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { recognizeAttention, resolveConfig, YuanError, type JsonObject, type YuanConfig } from '@yuan/core';
import {
  canDecode,
  loadDecodeKernels,
  openWeightSource,
  tf,
  type TensorAttentionPlugin,
  type TensorWeightFormat,
} from '@yuan/tensor';
import { configFromHf, ignoredTensorsNote, packedWeightShape, type AttentionLookup } from '../checkpoint.js';
import { YuanModel } from '../model.js';
import { Decoder } from './decoder.js';
import {
  dequantizedValues,
  randomInferenceWeights,
  readInferenceWeights,
  type InferenceWeights,
  type RandomWeightOptions,
} from './weights.js';

/** Options of `loadInferenceModel`. */
export interface InferenceLoadOptions {
  /** Weight formats to try for each linear weight, in order (default: the built-in fp32, bf16, int8, int4). */
  formats?: readonly TensorWeightFormat[];
  /** Called with the one-line note naming the tensors the model does not use. */
  onIgnored?: (note: string, ignored: readonly string[]) => void;
}

async function weightFiles(dir: string): Promise<string[]> {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let map: unknown;
    try {
      map = JSON.parse(await readFile(index, 'utf8')).weight_map;
    } catch (e) {
      throw new YuanError('checkpoint', `${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!map || typeof map !== 'object') throw new YuanError('checkpoint', `${index}: has no weight_map`);
    return [...new Set(Object.values(map as Record<string, string>))].sort().map((f) => path.join(dir, f));
  }
  if (existsSync(path.join(dir, 'model.safetensors'))) return [path.join(dir, 'model.safetensors')];
  const shards = (await readdir(dir)).filter((f) => /^model-.*\.safetensors$/.test(f)).sort();
  if (shards.length === 0)
    throw new YuanError('checkpoint', `${dir}: no model.safetensors, model-*.safetensors or index found`);
  return shards.map((f) => path.join(dir, f));
}

/** Whether generation can run on the native decoder: the native backend is active and the attention plugin decodes. */
async function nativeDecoding(attention: TensorAttentionPlugin<unknown>) {
  const { kernels } = await loadDecodeKernels();
  return kernels && tf.getBackend() === 'native' && canDecode(attention) ? kernels : undefined;
}

function modelOver(
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
  weights: InferenceWeights,
  decoder: Decoder | undefined,
): YuanModel {
  const model = YuanModel.lazy(config, attention, (spec) => dequantizedValues(weights, spec), decoder);
  if (!decoder) void model.params; // the tfjs path: fp32 parameters now, as loadCheckpoint makes them
  return model;
}

/**
 * Loads a Hugging Face YUAN 2.0 folder (config.json + model.safetensors, or shards with an index; bf16, fp32, or GPTQ
 * int8/int4 with `quantization_config`) for inference. Weights stay in their stored format (bf16 and fp32 files are
 * memory-mapped, GPTQ weights stay packed); on the native backend, with an attention plugin that decodes natively,
 * generation and logits run on the native `Decoder` and the tfjs parameters are made only if something asks for them
 * (training, a forward with caches). On other backends the weights are dequantized to fp32 tfjs parameters at load.
 */
export async function loadInferenceModel(
  dir: string,
  lookup: AttentionLookup,
  overrides: JsonObject = {},
  options: InferenceLoadOptions = {},
): Promise<YuanModel> {
  const { config, attention, weights } = await readStoredModel(dir, lookup, overrides, options);
  const kernels = await nativeDecoding(attention);
  return modelOver(config, attention, weights, kernels ? new Decoder(config, attention, weights, kernels) : undefined);
}

/**
 * A Hugging Face YUAN 2.0 folder's config and weights in their stored formats (what `loadInferenceModel` builds its
 * model from; `YuanModel.fromStoredWeights` trains an adapter over them). Errors as `loadInferenceModel`'s.
 */
export async function readStoredModel(
  dir: string,
  lookup: AttentionLookup,
  overrides: JsonObject = {},
  options: InferenceLoadOptions = {},
): Promise<{ config: YuanConfig; attention: TensorAttentionPlugin<unknown>; weights: InferenceWeights }> {
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
  // the kernels first: with them, the source maps the files instead of reading them
  await loadDecodeKernels();
  const source = await openWeightSource(await weightFiles(dir), hf.quantization_config as JsonObject | undefined);
  const names = [...source.tensors.keys()];
  // the first layer's attention tensors, for the registered plugins to recognize when config.json names none: a GPTQ
  // linear's `qweight` stands for its `weight` (a packed LFA convolution with the Conv2d shape `yuan quantize` recorded)
  const layer0 = new Map<string, readonly number[]>();
  const bits = Number(source.quantization?.bits);
  for (const [name, t] of source.tensors) {
    const m = /^model\.layers\.0\.self_attn\.(.+)$/.exec(name);
    if (!m) continue;
    const weight = m[1].replace(/\.qweight$/, '.weight');
    const values = (t.shape[0] * t.shape[1] * 32) / bits;
    const full = `model.layers.0.self_attn.${weight}`;
    const packed = weight !== m[1] && bits > 0 ? packedWeightShape(source.quantization, full, values) : undefined;
    layer0.set(weight, packed ?? t.shape);
  }
  const named = (overrides.attention as JsonObject | undefined)?.name;
  let config = configFromHf(hf, cfgPath, (spec) =>
    typeof named === 'string'
      ? { name: named, options: {} }
      : recognizeAttention(lookup.all?.() ?? [], layer0, spec, dir, lookup.preferred?.()),
  );
  if (Object.keys(overrides).length) config = resolveConfig(config as unknown as JsonObject, overrides);
  const attention = lookup(config.attention.name);
  const weights = readInferenceWeights(source, config, attention, options.formats);
  const used = (n: string) =>
    weights.vectors.has(n) || weights.linears.has(n.replace(/\.(weight|qweight|qzeros|scales|g_idx)$/, ''));
  // what an export derives from other weights (the tied head's copy, RoPE's inv_freq buffers) is not unused
  const derived = (n: string) =>
    n === 'lm_head.weight' || /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(n);
  const ignored = names.filter((n) => !used(n) && !derived(n)).sort();
  if (ignored.length) options.onIgnored?.(ignoredTensorsNote(dir, ignored), ignored);
  return { config, attention, weights };
}

/**
 * A randomly initialised model for inference (a `--preset` without a checkpoint). On the native backend with a natively
 * decoding attention plugin, the weights are generated in `options.format` (default fp32) in seconds by
 * `randomInferenceWeights` and served by the native decoder; elsewhere it is `YuanModel.init` (the training
 * initialisation, another random stream of the same distributions).
 */
export async function initInferenceModel(
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
  seed = 0,
  options: RandomWeightOptions = {},
): Promise<YuanModel> {
  const kernels = await nativeDecoding(attention);
  if (!kernels) {
    if (options.format && options.format.name !== 'fp32')
      throw new YuanError(
        'usage',
        `weights in ${options.format.name} need the native backend (this run uses ${tf.getBackend()})`,
      );
    return YuanModel.init(config, attention, seed);
  }
  const weights = randomInferenceWeights(config, attention, seed, options);
  return modelOver(config, attention, weights, new Decoder(config, attention, weights, kernels));
}
