import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  writeAtomic,
  YuanError,
  type JsonObject,
  type ParameterSpec,
  type QuantizedLinear,
  type QuantizeGrid,
  type QuantizerPlugin,
} from '@yuan/core';
import { modelParameters, readCheckpoint, resolveModelDir, YuanModel, type AttentionLookup } from '@yuan/model';
import {
  tf,
  withLinearHooks,
  writeSafetensors,
  type FloatDType,
  type LinearHook,
  type TensorToWrite,
} from '@yuan/tensor';
import { linearTensors, quantizationConfig } from './layout.js';

/** Progress of a quantization run: one report per linear quantized. */
export interface QuantizeProgress {
  /** The layer being quantized (0-based) and how many there are. */
  layer: number;
  layers: number;
  /** The linear just quantized (fused name, e.g. `model.layers.0.self_attn.qk_proj.weight`). */
  name: string;
  /** Linears done so far and in all. */
  done: number;
  total: number;
  /** Seconds since the run started. */
  seconds: number;
}

/** Options of `quantizeCheckpoint`. */
export interface QuantizeCheckpointOptions<O extends QuantizeGrid = QuantizeGrid> {
  /** The source: a Hugging Face YUAN checkpoint folder (or a training run folder: its newest checkpoint). */
  model: string;
  /** The output folder (created, or an existing checkpoint folder replaced whole); must differ from the source. */
  out: string;
  quantizer: QuantizerPlugin<O>;
  /** The quantizer's options (the grid and its own), merged over its defaults and validated (`validate`). */
  options: O;
  /** Resolves the checkpoint's attention plugin by name. */
  lookup: AttentionLookup;
  /** Calibration windows (token ids, equal lengths); needed when the quantizer is `calibrated`. */
  calibration?: Int32Array[];
  /** What to record about the calibration data in config.json (source, samples, seqLength, seed). */
  calibrationInfo?: JsonObject;
  /** Calibration windows per forward pass. Default 8. */
  batchSize?: number;
  /**
   * Keep LFA's convolutions (Conv2d weights [out, in, K, 1]) float, as the GPTQ layout's linears-only readers expect.
   * Default false: they are quantized like the linears, viewed as [out, in·K] (see the package README).
   */
  floatConvs?: boolean;
  /** Stored dtype of the tensors that stay float; default from config.json's torch_dtype (bfloat16, float16, else F32). */
  floatDtype?: FloatDType;
  onProgress?: (p: QuantizeProgress) => void;
}

/** What a quantization run did. */
export interface QuantizeSummary {
  method: string;
  /** The folder read (a training run resolves to its newest checkpoint). */
  source: string;
  out: string;
  layers: number;
  /** Linears quantized (HF tensors: q_proj and k_proj count twice). */
  linears: number;
  /** Parameters quantized and kept in float. */
  quantizedParameters: number;
  floatParameters: number;
  /** Size of model.safetensors written, in bytes. */
  bytes: number;
  seconds: number;
}

/** Files of a training checkpoint or of the weights that a quantized folder does not copy. */
const NOT_COPIED = /^(config\.json|model.*\.safetensors(\.index\.json)?|optimizer.*|trainer\.json|manifest\.json)$/;

function floatDtypeOf(hf: JsonObject): FloatDType {
  return hf.torch_dtype === 'bfloat16' ? 'BF16' : hf.torch_dtype === 'float16' ? 'F16' : 'F32';
}

/**
 * Splits a quantized linear into `parts` equal blocks of output rows (the Hugging Face parts of a fused parameter):
 * qweight, qzeros and scales are cut along the output dimension, g_idx is shared. Rows per part must fill whole int32
 * words of qzeros.
 */
function splitRows(q: QuantizedLinear, parts: number, name: string): QuantizedLinear[] {
  if (parts === 1) return [q];
  const pack = 32 / q.bits;
  const rows = q.rows / parts;
  if (!Number.isInteger(rows) || rows % pack !== 0)
    throw new YuanError(
      'quantize',
      `${name}: ${q.rows} rows do not split into ${parts} parts of whole ${pack}-value words`,
    );
  const groups = q.scales.length / q.rows;
  const words = q.qweight.length / q.rows;
  const cut = <T extends Int32Array | Float32Array>(a: T, lines: number, width: number, k: number): T => {
    const out = new (a.constructor as new (n: number) => T)(lines * (width / parts));
    for (let i = 0; i < lines; i++)
      out.set(a.subarray(i * width + (k * width) / parts, i * width + ((k + 1) * width) / parts), (i * width) / parts);
    return out;
  };
  return Array.from({ length: parts }, (_, k) => ({
    ...q,
    rows,
    qweight: cut(q.qweight, words, q.rows, k),
    qzeros: cut(q.qzeros, groups, q.rows / pack, k),
    scales: cut(q.scales, groups, q.rows, k),
  }));
}

/**
 * The fused names of the parameters that layer `part` passes to `linear` (2-D) or to `causalConv1d` (Conv2d weights,
 * unless `floatConvs`), in the order its forward uses them.
 */
function discoverLinears(
  part: YuanModel,
  byTensor: Map<tf.Tensor, string>,
  hidden: number,
  floatConvs: boolean,
): string[] {
  const seen: string[] = [];
  const hooks = new Map<tf.Tensor, LinearHook>();
  for (const [weight, name] of byTensor) {
    if (weight.rank < 2 || (weight.rank > 2 && floatConvs)) continue;
    hooks.set(weight, (x, base) => {
      if (!seen.includes(name)) seen.push(name);
      return base(x);
    });
  }
  tf.tidy(() => {
    const x = tf.fill([1, 2, hidden], 0.5) as tf.Tensor3D;
    withLinearHooks(hooks, () => part.layers(x));
  });
  return seen;
}

/**
 * H = 2/N·XᵀX of the inputs that reach `target` over every batch of hidden states (one forward of the layer per batch),
 * summed in float32 on the backend and read out once as Float64.
 */
function collectHessian(part: YuanModel, hidden: tf.Tensor3D[], target: tf.Tensor, cols: number): Float64Array {
  let sum: tf.Tensor | undefined;
  let rows = 0;
  try {
    for (const x of hidden) {
      tf.tidy(() => {
        const hooks = new Map<tf.Tensor, LinearHook>([
          [
            target,
            (v, base) => {
              const input = v.reshape([-1, cols]) as tf.Tensor2D;
              const xtx = tf.matMul(input, input, true, false);
              const next = tf.keep(sum ? tf.add(sum, xtx) : xtx);
              sum?.dispose();
              sum = next;
              rows += input.shape[0];
              return base(v);
            },
          ],
        ]);
        withLinearHooks(hooks, () => part.layers(x));
      });
    }
    const h = new Float64Array(cols * cols);
    if (!sum) return h;
    const data = sum.dataSync();
    const scale = 2 / rows;
    for (let k = 0; k < h.length; k++) h[k] = data[k] * scale;
    return h;
  } finally {
    sum?.dispose();
  }
}

/**
 * Quantizes every linear of a YUAN checkpoint's decoder layers with a quantizer plugin and writes the Hugging Face
 * GPTQ layout (see the package README): `<name>.qweight/.qzeros/.scales/.g_idx` per linear, embeddings, norms and
 * biases as floats, config.json with `quantization_config`, and the source's other files (tokenizer, ...) copied. The
 * linears are the 2-D parameters a layer's forward passes to `linear` (found by running it once), so any attention
 * plugin's projections are covered, and LFA's convolutions, which `causalConv1d` multiplies as [out, in·K] matrices
 * (packed as such; `quantization_config.yuan.weightShapes` records their Conv2d shape by name inside a layer), unless
 * `floatConvs` keeps them float. A fused parameter is quantized as one matrix and written as its Hugging
 * Face parts (q_proj and k_proj, up_proj and gate_proj), its output rows split; for quantizers whose values are per
 * output row (rtn, gptq: the parts share their inputs) that equals quantizing each part alone.
 *
 * A calibrated quantizer (GPTQ) runs the calibration windows through the model layer by layer, as the paper does:
 * each layer gets the outputs of the already quantized layers before it, and inside a layer each linear, in forward
 * order, gets H = 2/N·XᵀX from inputs computed with the linears before it already quantized ("true sequential").
 * Errors (one line): an unreadable source, a calibrated quantizer without calibration data, ids outside the vocabulary,
 * windows longer than the model's positions, a linear whose sizes the layout cannot pack, `out` equal to the source.
 */
export async function quantizeCheckpoint<O extends QuantizeGrid>(
  o: QuantizeCheckpointOptions<O>,
): Promise<QuantizeSummary> {
  const started = performance.now();
  const source = resolveModelDir(o.model);
  const out = path.resolve(o.out).replace(/\/+$/, '');
  if (out === path.resolve(source))
    throw new YuanError('usage', `--out ${o.out} is the source model folder; write the quantized model elsewhere`);
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(path.join(out, 'config.json'))) {
    throw new YuanError('usage', `--out ${o.out} exists and is not a model folder; refusing to replace it`);
  }
  const calibrated = o.quantizer.calibrated;
  if (calibrated && !o.calibration?.length)
    throw new YuanError('usage', `quantizer ${o.quantizer.name} needs calibration data (--calibration FILE|DIR)`);
  const hf = JSON.parse(await readFile(path.join(source, 'config.json'), 'utf8')) as JsonObject;
  const { config, attention, weights } = await readCheckpoint(source, o.lookup);
  const { numLayers, hiddenSize, maxPositions, vocabSize } = config.model;
  if (calibrated) {
    const t = o.calibration![0].length;
    if (o.calibration!.some((w) => w.length !== t))
      throw new YuanError('usage', 'calibration windows must all have the same length');
    if (t > maxPositions)
      throw new YuanError(
        'usage',
        `calibration windows of ${t} tokens exceed the model's maxPositions ${maxPositions} (lower --seq)`,
      );
    for (const w of o.calibration!) {
      const bad = w.find((id) => id < 0 || id >= vocabSize);
      if (bad !== undefined)
        throw new YuanError(
          'input',
          `calibration token id ${bad} is outside the model's vocabulary (0..${vocabSize - 1}): the data was tokenized for another model`,
        );
    }
  }
  const specs = modelParameters(config, attention);
  const specOf = new Map(specs.map((s) => [s.name, s]));
  const quantized = new Map<string, QuantizedLinear[]>();
  const batchSize = o.batchSize ?? 8;

  let hidden: tf.Tensor3D[] = [];
  if (calibrated) {
    const embedding = YuanModel.fromWeights(config, attention, weights, {
      embedding: true,
      firstLayer: 0,
      endLayer: 0,
      head: false,
    });
    for (let b = 0; b < o.calibration!.length; b += batchSize) {
      const rows = o.calibration!.slice(b, b + batchSize);
      const ids = tf.tensor2d(
        rows.flatMap((r) => [...r]),
        [rows.length, rows[0].length],
        'int32',
      );
      hidden.push(embedding.embed(ids));
      ids.dispose();
    }
    embedding.dispose();
  }

  let done = 0;
  let total = 0;
  try {
    for (let l = 0; l < numLayers; l++) {
      const part = YuanModel.fromWeights(config, attention, weights, {
        embedding: false,
        firstLayer: l,
        endLayer: l + 1,
        head: false,
      });
      try {
        const byTensor = new Map<tf.Tensor, string>([...part.params].map(([name, v]) => [v, name]));
        const names = discoverLinears(part, byTensor, hiddenSize, o.floatConvs ?? false);
        if (l === 0) total = names.length * numLayers;
        for (const name of names) {
          const spec = specOf.get(name) as ParameterSpec;
          // a Conv2d weight [out, in, K, 1] is the matrix [out, in·K] that causalConv1d multiplies
          const rows = spec.shape[0];
          const cols = spec.shape.slice(1).reduce((a, b) => a * b, 1);
          const variable = part.param(name);
          const hessian = calibrated ? collectHessian(part, hidden, variable, cols) : undefined;
          const parts = spec.parts ?? [spec.name];
          // a fused parameter (LFA's q|k, the MLP's up|gate) is quantized as one matrix, so GPTQ factorises its Hessian
          // once; its rows are then split into the Hugging Face parts (the layout's values are per output row)
          let q: QuantizedLinear;
          try {
            q = await o.quantizer.quantize({ name, weight: weights.get(name)!, rows, cols, hessian }, o.options);
          } catch (e) {
            if (e instanceof YuanError && !(e as Error).message.includes(name))
              throw new YuanError(e.code, `${name}: ${(e as Error).message}`);
            throw e;
          }
          const back = o.quantizer.dequantize(q);
          const qs = splitRows(q, parts.length, name);
          quantized.set(name, qs);
          if (calibrated) {
            const value = tf.tensor(back, spec.shape);
            variable.assign(value);
            value.dispose();
          }
          done++;
          o.onProgress?.({
            layer: l,
            layers: numLayers,
            name,
            done,
            total,
            seconds: (performance.now() - started) / 1000,
          });
        }
        if (calibrated) {
          const next = hidden.map((x) => part.layers(x).hidden);
          tf.dispose(hidden);
          hidden = next;
        }
      } finally {
        part.dispose();
      }
    }
  } finally {
    tf.dispose(hidden);
  }

  const floatDtype = o.floatDtype ?? floatDtypeOf(hf);
  const tensors: TensorToWrite[] = [];
  let quantizedParameters = 0;
  let floatParameters = 0;
  let linears = 0;
  // the shape each packed tensor stands for where it is not [out, in] (Conv2d weights), by name inside a layer
  const weightShapes: JsonObject = {};
  for (const spec of specs) {
    const parts = spec.parts ?? [spec.name];
    const partShape = [spec.shape[0] / parts.length, ...spec.shape.slice(1)];
    const n = partShape.reduce((a, b) => a * b, 1);
    const qs = quantized.get(spec.name);
    for (const [i, name] of parts.entries()) {
      if (qs) {
        tensors.push(...linearTensors(name.replace(/\.weight$/, ''), qs[i]));
        if (partShape.length > 2) weightShapes[name.replace(/^model\.layers\.\d+\./, '')] = partShape;
        quantizedParameters += n;
        linears++;
      } else {
        tensors.push({
          name,
          shape: partShape,
          data: weights.get(spec.name)!.subarray(i * n, (i + 1) * n),
          dtype: floatDtype,
        });
        floatParameters += n;
      }
    }
  }
  const { actOrder, damp } = o.options as { actOrder?: boolean; damp?: number };
  const outConfig: JsonObject = {
    ...hf,
    quantization_config: quantizationConfig(
      { ...o.options, actOrder, damp },
      {
        method: o.quantizer.name,
        options: o.options as unknown as JsonObject,
        ...(o.calibrationInfo ? { calibration: o.calibrationInfo } : {}),
        ...(Object.keys(weightShapes).length ? { weightShapes } : {}),
      },
    ),
  };
  await writeAtomic(out, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, {
      metadata: { format: 'pt', quantized_by: `yuan quantize --method ${o.quantizer.name}` },
    });
    await writeFile(path.join(tmp, 'config.json'), `${JSON.stringify(outConfig, null, 2)}\n`);
    for (const entry of await readdir(source, { withFileTypes: true })) {
      if (entry.isFile() && !NOT_COPIED.test(entry.name))
        await copyFile(path.join(source, entry.name), path.join(tmp, entry.name));
    }
  });
  return {
    method: o.quantizer.name,
    source,
    out,
    layers: numLayers,
    linears,
    quantizedParameters,
    floatParameters,
    bytes: (await stat(path.join(out, 'model.safetensors'))).size,
    seconds: (performance.now() - started) / 1000,
  };
}
