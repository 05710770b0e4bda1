import { YuanError, type ParameterSpec, type YuanConfig } from '@yuan/core';
import {
  bf16Format,
  fillFromTable,
  fp32Format,
  normalInitTable,
  toBf16Weight,
  toFp32Weight,
  weightFormatPlugins,
  type StoredWeight,
  type TensorAttentionPlugin,
  type TensorWeightFormat,
  type WeightSource,
} from '@yuan/tensor';
import { parameterSeed } from '../model.js';
import { modelParameters } from '../parameters.js';

/**
 * A model's weights for inference, each in its storage format: linear weights (and convolutions viewed as
 * [out, in·K]) by Hugging Face base name (`model.layers.0.self_attn.q_proj`, `model.embed_tokens`), fused parameters
 * kept as their parts; 1-D parameters (norm weights, biases) as float32 by full name.
 */
export interface InferenceWeights {
  linears: Map<string, StoredWeight>;
  vectors: Map<string, Float32Array>;
}

/** One stored piece of a parameter spec: a 1-D vector, or a linear part with its [out, in] shape. */
interface Piece {
  name: string;
  spec: ParameterSpec;
  shape?: [number, number];
}

function pieces(specs: readonly ParameterSpec[]): Piece[] {
  return specs.flatMap((spec) => {
    if (spec.shape.length === 1) return [{ name: spec.name, spec }];
    const parts = spec.parts ?? [spec.name];
    const rows = spec.shape[0] / parts.length;
    const cols = spec.shape.slice(1).reduce((a, b) => a * b, 1);
    return parts.map((p) => ({ name: p.replace(/\.weight$/, ''), spec, shape: [rows, cols] as [number, number] }));
  });
}

/** Bytes of weight data held (what one decode step reads, plus the embedding used as the head). */
export function weightBytes(w: InferenceWeights): number {
  let n = 0;
  for (const s of w.linears.values()) n += s.bytes;
  for (const v of w.vectors.values()) n += v.byteLength;
  return n;
}

/**
 * Reads every parameter of the model from a checkpoint's tensors in its stored format: for each linear weight the first
 * format (in `formats` order, default the built-ins) that recognises it; 1-D parameters widened to float32. A tensor that
 * no format reads is a one-line error naming it and its dtype.
 */
export function readInferenceWeights(
  source: WeightSource,
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
  formats: readonly TensorWeightFormat[] = weightFormatPlugins,
): InferenceWeights {
  const linears = new Map<string, StoredWeight>();
  const vectors = new Map<string, Float32Array>();
  for (const p of pieces(modelParameters(config, attention))) {
    if (!p.shape) {
      const t = source.tensors.get(p.name);
      if (!t)
        throw new YuanError(
          'checkpoint',
          `config does not match the weights: the checkpoint has no tensor ${p.name} (expected shape [${p.spec.shape}])`,
        );
      if (t.shape.join(',') !== p.spec.shape.join(',')) {
        throw new YuanError(
          'checkpoint',
          `config does not match the weights: ${p.name} has shape [${t.shape}] but the config implies [${p.spec.shape}]`,
        );
      }
      vectors.set(p.name, source.floats(p.name));
      continue;
    }
    let w: StoredWeight | undefined;
    for (const f of formats) if ((w = f.read(source, p.name, p.shape))) break;
    if (!w) {
      const t = source.tensors.get(`${p.name}.weight`) ?? source.tensors.get(`${p.name}.qweight`);
      if (!t)
        throw new YuanError(
          'checkpoint',
          `config does not match the weights: the checkpoint has no tensor ${p.name}.weight (expected shape [${p.shape}])`,
        );
      throw new YuanError(
        'checkpoint',
        `no weight format reads ${t.name} (dtype ${t.dtype}; formats: ${formats.map((f) => f.name).join(', ')})`,
      );
    }
    linears.set(p.name, w);
  }
  return { linears, vectors };
}

/** Options of `randomInferenceWeights`. */
export interface RandomWeightOptions {
  /** Format of the linear weights (default fp32). */
  format?: TensorWeightFormat;
  /**
   * Format of the embedding / tied head (default: the linears' format, as llama.cpp's GGUFs of one type quantize
   * `token_embd` too; the head is a fifth of the 2B model's bytes per token in int4, two fifths if kept in bf16).
   */
  embedFormat?: TensorWeightFormat;
  /**
   * Format of the LFA convolutions, viewed as [out, in·K] (default: the linears' format, as `yuan quantize` packs them;
   * `bf16Format` gives a model quantized with `--float-convs` from a bf16 source).
   */
  convFormat?: TensorWeightFormat;
}

/**
 * Random weights for inference, generated in their storage format (seconds for `yuan2-2b`): each piece seeded by
 * `parameterSeed(seed, name)`, normal(0, std) weights drawn from 65,536 equal-probability quantiles by a hashed index
 * (native, two threads), uniform ones likewise, norms 1. Not the training initialisation's stream (`YuanModel.init`),
 * but the same distributions.
 */
export function randomInferenceWeights(
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
  seed = 0,
  options: RandomWeightOptions = {},
): InferenceWeights {
  const format = options.format ?? fp32Format;
  const embedFormat = options.embedFormat ?? format;
  const convFormat = options.convFormat ?? format;
  const linears = new Map<string, StoredWeight>();
  const vectors = new Map<string, Float32Array>();
  // one table per bound, and one scratch array for the float values of weights stored in another format (the LFA
  // convolutions of the 2B shape are 192 M values: a fresh array per weight cost seconds of allocation and GC)
  const tables = new Map<number, Float32Array>();
  const uniformTable = (bound: number) => {
    let t = tables.get(bound);
    if (!t) {
      t = new Float32Array(65536);
      for (let i = 0; i < 65536; i++) t[i] = (((i + 0.5) / 65536) * 2 - 1) * bound;
      tables.set(bound, t);
    }
    return t;
  };
  let scratch = new Float32Array(0);
  for (const p of pieces(modelParameters(config, attention))) {
    const s = parameterSeed(seed, p.name);
    const init = p.spec.init;
    if (!p.shape) {
      const v = new Float32Array(p.spec.shape[0]);
      if (init.kind === 'ones') v.fill(1);
      else if (init.kind === 'normal') fillFromTable(v, s, normalInitTable(init.std));
      else if (init.kind === 'uniform') fillFromTable(v, s, uniformTable(init.bound));
      vectors.set(p.name, v);
      continue;
    }
    const [out, inF] = p.shape;
    const f = p.name === 'model.embed_tokens' ? embedFormat : p.spec.shape.length > 2 ? convFormat : format;
    if (init.kind === 'normal') linears.set(p.name, f.random(out, inF, s, init.std));
    else if (init.kind === 'uniform' && f !== fp32Format && f !== bf16Format) {
      // an int format's random codes are uniform already: uniform(−b, b) has the standard deviation b/√3
      linears.set(p.name, f.random(out, inF, s, init.bound / Math.sqrt(3)));
    } else {
      const fp32 = f !== bf16Format;
      if (!fp32 && scratch.length < out * inF) scratch = new Float32Array(out * inF);
      const values = fp32 ? new Float32Array(out * inF) : scratch.subarray(0, out * inF);
      if (init.kind === 'uniform') fillFromTable(values, s, uniformTable(init.bound));
      else values.fill(init.kind === 'ones' ? 1 : 0);
      linears.set(p.name, fp32 ? toFp32Weight(values, out, inF) : toBf16Weight(values, out, inF));
    }
  }
  return { linears, vectors };
}

/** Float32 values of every parameter spec (fused parts concatenated), dequantized from stored weights. */
export function dequantizedValues(w: InferenceWeights, spec: ParameterSpec): Float32Array {
  if (spec.shape.length === 1) {
    const v = w.vectors.get(spec.name);
    if (!v) throw new YuanError('checkpoint', `weights have no ${spec.name}`);
    return v;
  }
  const parts = (spec.parts ?? [spec.name]).map((p) => p.replace(/\.weight$/, ''));
  const out = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  let at = 0;
  for (const p of parts) {
    const s = w.linears.get(p);
    if (!s) throw new YuanError('checkpoint', `weights have no ${p}`);
    const v = s.format.dequantize(s);
    out.set(v, at);
    at += v.length;
  }
  return out;
}

/** Stored fp32 weights over a float32 weight map by fused name (a trained model's `weights()`; not copied). */
export function inferenceWeightsFromFloat32(
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
  weights: Map<string, Float32Array>,
): InferenceWeights {
  const linears = new Map<string, StoredWeight>();
  const vectors = new Map<string, Float32Array>();
  for (const spec of modelParameters(config, attention)) {
    const data = weights.get(spec.name);
    if (!data) throw new YuanError('checkpoint', `weights have no ${spec.name}`);
    if (spec.shape.length === 1) {
      vectors.set(spec.name, data);
      continue;
    }
    const parts = spec.parts ?? [spec.name];
    const rows = spec.shape[0] / parts.length;
    const cols = spec.shape.slice(1).reduce((a, b) => a * b, 1);
    parts.forEach((p, i) =>
      linears.set(
        p.replace(/\.weight$/, ''),
        toFp32Weight(data.subarray(i * rows * cols, (i + 1) * rows * cols), rows, cols),
      ),
    );
  }
  return { linears, vectors };
}
