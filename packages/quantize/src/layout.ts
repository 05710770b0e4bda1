import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { recognizeAttention, YuanError, type JsonObject, type QuantizedLinear, type QuantizeGrid } from '@yuan/core';
import { configFromHf, modelParameters, packedWeightShape, YuanModel, type AttentionLookup } from '@yuan/model';
import { openSafetensors, type SafetensorsFile, type TensorToWrite } from '@yuan/tensor';
import { dequantizeLinear } from './plugins.js';

/** The suffixes of one quantized linear's tensors in the GPTQ layout (`<name>.qweight`, ...). */
export const QUANTIZED_SUFFIXES = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;

/** What a quantization run records beside the grid in `quantization_config.yuan`. */
export interface YuanQuantizationInfo {
  /** The quantizer plugin that made the weights (`rtn`, `gptq`, ...). */
  method: string;
  /** The quantizer's options as run (grid included). */
  options: JsonObject;
  /** The calibration data, if any: source, samples, seqLength, seed. */
  calibration?: JsonObject;
}

/**
 * The `quantization_config` of config.json in the Hugging Face GPTQ form: quant_method "gptq", bits, group_size (−1 per
 * channel), desc_act (act-order), sym, checkpoint_format "gptq" (AutoGPTQ v1: qzeros store zero − 1), true_sequential,
 * and yuan's own record (`yuan`: the method, its options and the calibration data).
 */
export function quantizationConfig(
  grid: QuantizeGrid & { actOrder?: boolean; damp?: number },
  info: YuanQuantizationInfo,
): JsonObject {
  return {
    quant_method: 'gptq',
    bits: grid.bits,
    group_size: grid.groupSize,
    desc_act: grid.actOrder ?? false,
    sym: grid.sym,
    ...(grid.damp !== undefined ? { damp_percent: grid.damp } : {}),
    true_sequential: true,
    static_groups: false,
    checkpoint_format: 'gptq',
    yuan: info as unknown as JsonObject,
  };
}

/** The four tensors of a quantized linear named after `base` (its weight name without `.weight`), shaped as the layout says. */
export function linearTensors(base: string, q: QuantizedLinear): TensorToWrite[] {
  const pack = 32 / q.bits;
  const groups = q.scales.length / q.rows;
  return [
    { name: `${base}.qweight`, shape: [q.cols / pack, q.rows], data: q.qweight },
    { name: `${base}.qzeros`, shape: [groups, q.rows / pack], data: q.qzeros },
    { name: `${base}.scales`, shape: [groups, q.rows], data: q.scales, dtype: 'F16' },
    { name: `${base}.g_idx`, shape: [q.cols], data: q.gIdx },
  ];
}

/** A GPTQ-layout checkpoint as read: its config.json, the grid it declares, float tensors and quantized linears by base name. */
export interface QuantizedCheckpoint {
  dir: string;
  /** config.json as stored. */
  hf: JsonObject;
  bits: number;
  groupSize: number;
  checkpointFormat: 'gptq' | 'gptq_v2';
  /** Tensors stored as floats (embeddings, norms, LFA convolutions), by name. */
  floats: Map<string, Float32Array>;
  /** Quantized linears by base name (`model.layers.0.mlp.down_proj`). */
  linears: Map<string, QuantizedLinear>;
  /**
   * The shape of every float tensor and of every quantized linear's weight (`<base>.weight`: [rows, cols], or the
   * Conv2d shape recorded in `quantization_config.yuan.weightShapes` for a packed LFA convolution).
   */
  shapes: Map<string, readonly number[]>;
}

async function weightFiles(dir: string): Promise<SafetensorsFile[]> {
  const index = path.join(dir, 'model.safetensors.index.json');
  let files = ['model.safetensors'];
  if (existsSync(index)) {
    let map: unknown;
    try {
      map = JSON.parse(await readFile(index, 'utf8')).weight_map;
    } catch (e) {
      throw new YuanError('checkpoint', `${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!map || typeof map !== 'object') throw new YuanError('checkpoint', `${index}: has no weight_map`);
    files = [...new Set(Object.values(map as Record<string, string>))].sort();
  } else if (!existsSync(path.join(dir, files[0])))
    throw new YuanError('checkpoint', `${dir}: no model.safetensors or model.safetensors.index.json`);
  const opened: SafetensorsFile[] = [];
  try {
    for (const f of files) opened.push(await openSafetensors(path.join(dir, f)));
  } catch (e) {
    await Promise.all(opened.map((o) => o.close()));
    throw e;
  }
  return opened;
}

function int32s(bytes: Uint8Array): Int32Array {
  return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/**
 * Reads a checkpoint folder in the Hugging Face GPTQ layout (config.json with `quantization_config`, model.safetensors
 * or shards with an index): every `<base>.qweight` with its `qzeros`, `scales` and `g_idx` (absent g_idx: column i in
 * group i / group_size) as a quantized linear, every other float tensor as it is. A missing config or
 * quantization_config, a quant_method other than gptq, bits other than 2/4/8, or a linear missing a part or with
 * shapes that disagree is a one-line error naming it.
 */
export async function readQuantizedCheckpoint(dir: string): Promise<QuantizedCheckpoint> {
  const cfgPath = path.join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new YuanError('checkpoint', `${dir}: no config.json`);
  let hf: JsonObject;
  try {
    hf = JSON.parse(await readFile(cfgPath, 'utf8'));
  } catch (e) {
    throw new YuanError('checkpoint', `${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const qc = hf.quantization_config as JsonObject | undefined;
  if (!qc || typeof qc !== 'object')
    throw new YuanError('checkpoint', `${cfgPath}: no quantization_config (not a quantized checkpoint)`);
  if (qc.quant_method !== 'gptq')
    throw new YuanError(
      'checkpoint',
      `${cfgPath}: quantization_config.quant_method ${JSON.stringify(qc.quant_method)}; yuan reads "gptq"`,
    );
  const bits = qc.bits as number;
  if (bits !== 2 && bits !== 4 && bits !== 8)
    throw new YuanError(
      'checkpoint',
      `${cfgPath}: quantization_config.bits ${JSON.stringify(bits)}; yuan reads 2, 4 or 8`,
    );
  const groupSize = (qc.group_size as number | undefined) ?? -1;
  const format = (qc.checkpoint_format as string | undefined) ?? 'gptq';
  if (format !== 'gptq' && format !== 'gptq_v2')
    throw new YuanError(
      'checkpoint',
      `${cfgPath}: quantization_config.checkpoint_format ${JSON.stringify(format)}; yuan reads gptq or gptq_v2`,
    );
  const files = await weightFiles(dir);
  try {
    const where = new Map<string, SafetensorsFile>();
    for (const f of files) for (const name of f.entries.keys()) where.set(name, f);
    const floats = new Map<string, Float32Array>();
    const linears = new Map<string, QuantizedLinear>();
    const shapes = new Map<string, readonly number[]>();
    const isPart = (n: string) => QUANTIZED_SUFFIXES.some((s) => n.endsWith(`.${s}`));
    for (const [name, file] of where) {
      if (!name.endsWith('.qweight')) {
        const e = file.entries.get(name)!;
        if (!isPart(name) && e.readable) {
          floats.set(name, await file.read(name));
          shapes.set(name, e.shape);
        }
        continue;
      }
      const base = name.slice(0, -'.qweight'.length);
      const entry = (suffix: string) => {
        const f = where.get(`${base}.${suffix}`);
        if (!f) throw new YuanError('checkpoint', `${dir}: ${base}.qweight has no ${base}.${suffix}`);
        return { f, e: f.entries.get(`${base}.${suffix}`)! };
      };
      const qw = entry('qweight');
      const qz = entry('qzeros');
      const sc = entry('scales');
      const pack = 32 / bits;
      const [words, rows] = qw.e.shape;
      const cols = words * pack;
      const groups = sc.e.shape[0];
      const bad = (what: string) => new YuanError('checkpoint', `${dir}: ${base}: ${what}`);
      if (qw.e.dtype !== 'I32' || qz.e.dtype !== 'I32')
        throw bad(`qweight and qzeros must be I32 (got ${qw.e.dtype}, ${qz.e.dtype})`);
      if (sc.e.shape.length !== 2 || sc.e.shape[1] !== rows || !sc.e.readable)
        throw bad(`scales [${sc.e.shape}] ${sc.e.dtype} is not a float [groups, ${rows}]`);
      if (qz.e.shape.join() !== `${groups},${rows / pack}`)
        throw bad(`qzeros [${qz.e.shape}] is not [${groups}, ${rows / pack}]`);
      let gIdx: Int32Array;
      if (where.has(`${base}.g_idx`)) {
        const gi = entry('g_idx');
        if (gi.e.dtype !== 'I32' || gi.e.shape.join() !== `${cols}`)
          throw bad(`g_idx [${gi.e.shape}] ${gi.e.dtype} is not I32 [${cols}]`);
        gIdx = int32s(await gi.f.readBytes(`${base}.g_idx`));
      } else {
        const g = groupSize === -1 ? cols : groupSize;
        gIdx = Int32Array.from({ length: cols }, (_, i) => Math.floor(i / g));
      }
      shapes.set(`${base}.weight`, packedWeightShape(qc, `${base}.weight`, rows * cols) ?? [rows, cols]);
      linears.set(base, {
        rows,
        cols,
        bits,
        groupSize,
        checkpointFormat: format,
        qweight: int32s(await qw.f.readBytes(`${base}.qweight`)),
        qzeros: int32s(await qz.f.readBytes(`${base}.qzeros`)),
        scales: await sc.f.read(`${base}.scales`),
        gIdx,
      });
    }
    return { dir, hf, bits, groupSize, checkpointFormat: format, floats, linears, shapes };
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
}

/** Every weight of a quantized checkpoint as float32 by Hugging Face name, the quantized linears dequantized to `<base>.weight`. */
export function dequantizedWeights(ckpt: QuantizedCheckpoint): Map<string, Float32Array> {
  const out = new Map(ckpt.floats);
  for (const [base, q] of ckpt.linears) out.set(`${base}.weight`, dequantizeLinear(q));
  return out;
}

/**
 * Loads a GPTQ-layout YUAN checkpoint as a float32 model: its linears dequantized (`dequantizedWeights`), fused parts
 * (q_proj + k_proj, up_proj + gate_proj) joined as the model holds them. `lookup` resolves the attention plugin; a
 * weight the config needs and the folder lacks is an error naming it.
 */
export async function loadQuantizedModel(dir: string, lookup: AttentionLookup): Promise<YuanModel> {
  const ckpt = await readQuantizedCheckpoint(dir);
  const hfWeights = dequantizedWeights(ckpt);
  // a config.json that names no attention plugin: the registered plugins recognize the first layer's tensors
  const layer0 = new Map<string, readonly number[]>();
  for (const [name, shape] of ckpt.shapes) {
    const m = /^model\.layers\.0\.self_attn\.(.+)$/.exec(name);
    if (m) layer0.set(m[1], shape);
  }
  const config = configFromHf(ckpt.hf, path.join(dir, 'config.json'), (spec) =>
    recognizeAttention(lookup.all?.() ?? [], layer0, spec, dir),
  );
  const attention = lookup(config.attention.name);
  const fused = new Map<string, Float32Array>();
  for (const spec of modelParameters(config, attention)) {
    const parts = spec.parts ?? [spec.name];
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    parts.forEach((name, i) => {
      const w = hfWeights.get(name);
      if (!w) throw new YuanError('checkpoint', `${dir}: no tensor ${name} (neither float nor quantized)`);
      if (w.length !== size / parts.length)
        throw new YuanError(
          'checkpoint',
          `${dir}: ${name} has ${w.length} values; the config implies ${size / parts.length}`,
        );
      data.set(w, (i * size) / parts.length);
    });
    fused.set(spec.name, data);
  }
  return YuanModel.fromWeights(config, attention, fused);
}
