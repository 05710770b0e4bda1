import { YuanError, type WeightFormatPlugin } from '@yuan/core';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../half.js';
import { decodeKernels, type DecodeKernels } from './kernels.js';
import { viewAs, type WeightSource } from './source.js';

/** GPTQ storage of a 4- or 8-bit weight (Hugging Face / AutoGPTQ layout; rows sorted by group when act-order). */
export interface GptqData {
  /** [in·bits/32, out]: 32/bits consecutive input rows of one column per word, lowest bits first. */
  qweight: Int32Array;
  /** [groups, ceil(out·bits/32)]: zero points packed along the output dim. */
  qzeros: Int32Array;
  /** [groups, out] fp16 bits. */
  scales: Uint16Array;
  /** Input feeding packed row k (act-order checkpoints), or null. */
  perm: Int32Array | null;
  bits: 4 | 8;
  /** Input rows per group (a checkpoint's −1 is `in`). */
  group: number;
  /** Added to the stored zero point: 1 for AutoGPTQ's `gptq` checkpoint format, 0 for `gptq_v2`. */
  zeroOffset: number;
}

/** A linear weight of logical shape [out, in] in its storage format. */
export interface StoredWeight {
  readonly format: TensorWeightFormat;
  readonly out: number;
  readonly in: number;
  /** Bytes of weight data held (what a product reads). */
  readonly bytes: number;
  readonly f32?: Float32Array;
  readonly bf16?: Uint16Array;
  readonly gptq?: GptqData;
}

/** A weight-format plugin with the tensor package's weight and source types. */
export interface TensorWeightFormat extends WeightFormatPlugin<StoredWeight, WeightSource> {
  /** W's fp32 values [out, in] (the path of the wasm and cpu backends, and the reference of the kernels). */
  dequantize(w: StoredWeight): Float32Array;
  /** Row `index` of W (an embedding lookup) into `out` [in]. */
  row(w: StoredWeight, index: number, out: Float32Array): void;
  /** y [n, out] = x [n, in] · Wᵀ with the native kernels. */
  matmul(w: StoredWeight, x: Float32Array, n: number, y: Float32Array, kernels: DecodeKernels): void;
  /**
   * ya [n, a.out] = x · Aᵀ and yb [n, b.out] = x · Bᵀ for two weights of this format with the same input width, in one
   * native call (one parallel region, the activations prepared once), each result bit for bit `matmul`'s. Optional: a
   * format without it makes two `matmul` calls.
   */
  matmulPair?(
    a: StoredWeight,
    b: StoredWeight,
    x: Float32Array,
    n: number,
    ya: Float32Array,
    yb: Float32Array,
    kernels: DecodeKernels,
  ): void;
  /**
   * dx [n, in] = dy [n, out] · W with the native kernels (the input gradient of `matmul`; a frozen packed base's
   * backward), without an fp32 copy of all of W. Optional: a format without it is dequantized for the product.
   */
  gradInput?(w: StoredWeight, dy: Float32Array, n: number, dx: Float32Array, kernels: DecodeKernels): void;
  /** Random weights in this format with the given standard deviation (see `randomWeight`). */
  random(out: number, inFeatures: number, seed: number, std: number): StoredWeight;
}

function shapeError(base: string, tensor: string, got: readonly number[], want: readonly number[]): never {
  throw new YuanError(
    'checkpoint',
    `config does not match the weights: ${base}.${tensor} has shape [${got}] but the config implies [${want}]`,
  );
}

function dense(
  format: TensorWeightFormat,
  out: number,
  inF: number,
  data: { f32?: Float32Array; bf16?: Uint16Array },
): StoredWeight {
  const bytes = data.f32 ? data.f32.byteLength : data.bf16!.byteLength;
  return { format, out, in: inF, bytes, ...data };
}

// The 65,536 quantiles of N(0, 1) at (i + ½)/65536, by inverting the normal CDF integrated on a fine grid.
let normalQuantiles: Float32Array | undefined;
function normalTable(): Float32Array {
  if (normalQuantiles) return normalQuantiles;
  const step = 1e-4;
  const lo = -9;
  const n = Math.round(18 / step);
  const cdf = new Float64Array(n + 1);
  const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  for (let i = 1; i <= n; i++) cdf[i] = cdf[i - 1] + ((pdf(lo + (i - 1) * step) + pdf(lo + i * step)) * step) / 2;
  const table = new Float32Array(65536);
  let j = 0;
  for (let i = 0; i < 65536; i++) {
    const p = ((i + 0.5) / 65536) * cdf[n];
    while (cdf[j + 1] < p) j++;
    table[i] = lo + (j + (p - cdf[j]) / (cdf[j + 1] - cdf[j])) * step;
  }
  return (normalQuantiles = table);
}

/** Values of a normal(0, std) init for the native random fill: the table of quantiles scaled by std. */
export function normalInitTable(std: number): Float32Array {
  return normalTable().map((v) => v * std);
}

/** The same fill in JS (used where the native addon is missing): out[i] as the native `randomTable` gives it. */
function jsRandomTable(out: Float32Array, seed: number, table: Float32Array): void {
  const M = (1n << 64n) - 1n;
  const mix = (z: bigint) => {
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  for (let b = 0; b < Math.ceil(out.length / 4); b++) {
    const h = mix((BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(b + 1) * 0xd1b54a32d192ed03n) & M);
    for (let j = 0; j < 4 && 4 * b + j < out.length; j++)
      out[4 * b + j] = table[Number((h >> BigInt(16 * j)) & 0xffffn)];
  }
}

/** Fills `out` with values drawn from `table` by the hashed index stream of `seed` (native when available). */
export function fillFromTable(out: Float32Array, seed: number, table: Float32Array): void {
  const k = decodeKernels();
  if (k) k.randomTable(out, seed, table);
  else jsRandomTable(out, seed, table);
}

/** `fp32`: float32 [out, in] (F32 tensors as stored; F16 ones widened). */
export const fp32Format: TensorWeightFormat = {
  kind: 'weight-format',
  name: 'fp32',
  description: 'float32 weights [out, in] (F32 safetensors as stored, F16 widened); products by OpenBLAS',
  defaults: {},
  bits: 32,
  read(source, base, [out, inF]) {
    const t = source.tensors.get(`${base}.weight`);
    if (!t || source.tensors.has(`${base}.qweight`) || (t.dtype !== 'F32' && t.dtype !== 'F16')) return undefined;
    if (t.shape.reduce((a, b) => a * b, 1) !== out * inF) shapeError(base, 'weight', t.shape, [out, inF]);
    const f32 = t.dtype === 'F32' ? viewAs(t.bytes(), Float32Array) : source.floats(t.name);
    return dense(fp32Format, out, inF, { f32 });
  },
  dequantize: (w) => w.f32!,
  row(w, index, out) {
    out.set(w.f32!.subarray(index * w.in, (index + 1) * w.in));
  },
  matmul(w, x, n, y, k) {
    k.linearF32(x, n, w.f32!, w.out, w.in, y);
  },
  matmulPair(a, b, x, n, ya, yb, k) {
    k.linearF32Pair(x, n, a.f32!, a.out, b.f32!, b.out, a.in, ya, yb);
  },
  gradInput(w, dy, n, dx, k) {
    k.linearF32GradInput(dy, n, w.f32!, w.out, w.in, dx);
  },
  random(out, inF, seed, std) {
    const f32 = new Float32Array(out * inF);
    fillFromTable(f32, seed, normalInitTable(std));
    return dense(fp32Format, out, inF, { f32 });
  },
};

/** `bf16`: bfloat16 bits [out, in], kept as stored (a mapped file is not copied); converted in registers. */
export const bf16Format: TensorWeightFormat = {
  kind: 'weight-format',
  name: 'bf16',
  description:
    'bfloat16 weights [out, in] as stored (memory-mapped); converted to fp32 in registers, fp32 accumulation',
  defaults: {},
  bits: 16,
  read(source, base, [out, inF]) {
    const t = source.tensors.get(`${base}.weight`);
    if (!t || t.dtype !== 'BF16' || source.tensors.has(`${base}.qweight`)) return undefined;
    if (t.shape.reduce((a, b) => a * b, 1) !== out * inF) shapeError(base, 'weight', t.shape, [out, inF]);
    return dense(bf16Format, out, inF, { bf16: viewAs(t.bytes(), Uint16Array) });
  },
  dequantize(w) {
    const b = w.bf16!;
    const k = decodeKernels();
    const out = new Float32Array(b.length);
    if (k) k.bf16ToF32(b, out);
    else for (let i = 0; i < b.length; i++) out[i] = bf16ToFloat(b[i]);
    return out;
  },
  row(w, index, out) {
    const b = w.bf16!;
    for (let i = 0; i < w.in; i++) out[i] = bf16ToFloat(b[index * w.in + i]);
  },
  matmul(w, x, n, y, k) {
    k.linearBf16(x, n, w.bf16!, w.out, w.in, y);
  },
  matmulPair(a, b, x, n, ya, yb, k) {
    k.linearBf16Pair(x, n, a.bf16!, a.out, b.bf16!, b.out, a.in, ya, yb);
  },
  gradInput(w, dy, n, dx, k) {
    k.linearBf16GradInput(dy, n, w.bf16!, w.out, w.in, dx);
  },
  random(out, inF, seed, std) {
    const bf16 = new Uint16Array(out * inF);
    const k = decodeKernels();
    if (k) k.randomTable(bf16, seed, normalInitTable(std));
    else {
      const f = new Float32Array(out * inF);
      jsRandomTable(f, seed, normalInitTable(std));
      for (let i = 0; i < f.length; i++) bf16[i] = floatToBf16(f[i]);
    }
    return dense(bf16Format, out, inF, { bf16 });
  },
};

/** A bf16 weight from float32 values (round to nearest even): a cast, not a quantizer. */
export function toBf16Weight(values: Float32Array, out: number, inF: number): StoredWeight {
  if (values.length !== out * inF)
    throw new YuanError('input', `toBf16Weight: ${values.length} values do not make [${out}, ${inF}]`);
  const bf16 = new Uint16Array(values.length);
  const k = decodeKernels();
  if (k) k.f32ToBf16(values, bf16);
  else for (let i = 0; i < values.length; i++) bf16[i] = floatToBf16(values[i]);
  return dense(bf16Format, out, inF, { bf16 });
}

/** A fp32 weight over float32 values [out, in] (not copied). */
export function toFp32Weight(values: Float32Array, out: number, inF: number): StoredWeight {
  if (values.length !== out * inF)
    throw new YuanError('input', `toFp32Weight: ${values.length} values do not make [${out}, ${inF}]`);
  return dense(fp32Format, out, inF, { f32: values });
}

function gptqWord(d: GptqData, out: number, k: number, c: number): number {
  const per = 32 / d.bits;
  return (d.qweight[Math.floor(k / per) * out + c] >>> (d.bits * (k % per))) & ((1 << d.bits) - 1);
}

function gptqZero(d: GptqData, out: number, g: number, c: number): number {
  const per = 32 / d.bits;
  const words = Math.ceil((out * d.bits) / 32);
  return ((d.qzeros[g * words + Math.floor(c / per)] >>> (d.bits * (c % per))) & ((1 << d.bits) - 1)) + d.zeroOffset;
}

/** The GPTQ settings of a checkpoint's `quantization_config`, checked (one-line errors name the field). */
function gptqConfig(q: Record<string, unknown>): { bits: number; group: number; zeroOffset: number } {
  const bad = (what: string) => {
    throw new YuanError('checkpoint', `config.json quantization_config: ${what}`);
  };
  if (q.quant_method !== 'gptq')
    bad(`quant_method ${JSON.stringify(q.quant_method)} is not supported (yuan reads "gptq")`);
  if (q.bits !== 4 && q.bits !== 8) bad(`bits ${JSON.stringify(q.bits)}: yuan reads 4 or 8`);
  const group = q.group_size ?? 128;
  if (!(Number.isInteger(group) && ((group as number) > 0 || group === -1)))
    bad(`group_size ${JSON.stringify(group)}: expected a positive integer or -1`);
  const fmt = q.checkpoint_format ?? 'gptq';
  if (fmt !== 'gptq' && fmt !== 'gptq_v2')
    bad(`checkpoint_format ${JSON.stringify(fmt)}: expected "gptq" or "gptq_v2"`);
  return { bits: q.bits as number, group: group as number, zeroOffset: fmt === 'gptq_v2' ? 0 : 1 };
}

/**
 * Reads a GPTQ weight: qweight, qzeros, scales and g_idx as Hugging Face stores them. An act-order g_idx is applied at
 * load: rows are sorted by group (repacked) and `perm` records which input feeds each row.
 */
function readGptq(
  format: TensorWeightFormat,
  bits: 4 | 8,
  source: WeightSource,
  base: string,
  out: number,
  inF: number,
): StoredWeight | undefined {
  if (!source.tensors.has(`${base}.qweight`) || !source.quantization) return undefined;
  const cfg = gptqConfig(source.quantization);
  if (cfg.bits !== bits) return undefined;
  const per = 32 / bits;
  const group = cfg.group === -1 ? inF : cfg.group;
  if (inF % per !== 0 || group % per !== 0)
    throw new YuanError(
      'checkpoint',
      `${base}: in ${inF} and group ${group} must be multiples of ${per} for ${bits}-bit GPTQ`,
    );
  const groups = Math.ceil(inF / group);
  const words = Math.ceil((out * bits) / 32);
  const need = (suffix: string, dtype: string, shape: number[]) => {
    const t = source.get(`${base}.${suffix}`);
    if (t.dtype !== dtype)
      throw new YuanError('checkpoint', `${base}.${suffix} has dtype ${t.dtype}; GPTQ stores ${dtype}`);
    if (t.shape.join(',') !== shape.join(',')) shapeError(base, suffix, t.shape, shape);
    return t.bytes();
  };
  let qweight = viewAs(need('qweight', 'I32', [inF / per, out]), Int32Array);
  const qzeros = viewAs(need('qzeros', 'I32', [groups, words]), Int32Array);
  const scales = viewAs(need('scales', 'F16', [groups, out]), Uint16Array);
  let perm: Int32Array | null = null;
  if (source.tensors.has(`${base}.g_idx`)) {
    const gIdx = viewAs(need('g_idx', 'I32', [inF]), Int32Array);
    if (gIdx.some((g, k) => g !== Math.floor(k / group))) {
      const order = Array.from({ length: inF }, (_, k) => k).sort((a, b) => gIdx[a] - gIdx[b] || a - b);
      order.forEach((k, i) => {
        if (gIdx[k] !== Math.floor(i / group))
          throw new YuanError(
            'checkpoint',
            `${base}.g_idx: group ${gIdx[k]} does not hold ${group} rows (act-order needs full groups)`,
          );
      });
      perm = Int32Array.from(order);
      const packed = new Int32Array(qweight.length);
      const mask = (1 << bits) - 1;
      for (let i = 0; i < inF; i++) {
        const src = order[i];
        const sRow = Math.floor(src / per) * out;
        const sShift = bits * (src % per);
        const dRow = Math.floor(i / per) * out;
        const dShift = bits * (i % per);
        for (let c = 0; c < out; c++) packed[dRow + c] |= ((qweight[sRow + c] >>> sShift) & mask) << dShift;
      }
      qweight = packed;
    }
  }
  const gptq: GptqData = { qweight, qzeros, scales, perm, bits, group, zeroOffset: cfg.zeroOffset };
  return { format, out, in: inF, bytes: qweight.byteLength + qzeros.byteLength + scales.byteLength, gptq };
}

function gptqFormat(bits: 4 | 8): TensorWeightFormat {
  const format: TensorWeightFormat = {
    kind: 'weight-format',
    name: `int${bits}`,
    description:
      bits === 8
        ? '8-bit GPTQ-layout weights (per channel with group_size -1, or group-wise); integer dot products against int16-quantized activations'
        : '4-bit GPTQ-layout weights with group scales and zero points; integer dot products against int8-quantized activations',
    defaults: {},
    bits,
    read: (source, base, [out, inF]) => readGptq(format, bits, source, base, out, inF),
    dequantize(w) {
      const d = w.gptq!;
      const out = new Float32Array(w.out * w.in);
      // the fp16 scales converted once ([groups, out]), not once per weight: this runs in every input gradient of a
      // packed base (LoRA), where converting per weight took most of a step
      const scales = Float32Array.from(d.scales, halfToFloat);
      for (let k = 0; k < w.in; k++) {
        const g = Math.floor(k / d.group);
        const col = d.perm ? d.perm[k] : k;
        for (let c = 0; c < w.out; c++)
          out[c * w.in + col] = (gptqWord(d, w.out, k, c) - gptqZero(d, w.out, g, c)) * scales[g * w.out + c];
      }
      return out;
    },
    row(w, index, out) {
      // row `index` of [out, in] is column `index` of the packed [in, out]
      const d = w.gptq!;
      for (let k = 0; k < w.in; k++) {
        const g = Math.floor(k / d.group);
        out[d.perm ? d.perm[k] : k] = Math.fround(
          (gptqWord(d, w.out, k, index) - gptqZero(d, w.out, g, index)) * halfToFloat(d.scales[g * w.out + index]),
        );
      }
    },
    matmul(w, x, n, y, k) {
      const d = w.gptq!;
      k.linearGptq(x, n, d.qweight, d.qzeros, d.scales, d.perm, d.bits, d.group, w.in, w.out, d.zeroOffset, y);
    },
    matmulPair(a, b, x, n, ya, yb, k) {
      const p = a.gptq!;
      const q = b.gptq!;
      k.linearGptqPair(
        x,
        n,
        p.qweight,
        p.qzeros,
        p.scales,
        p.perm,
        p.bits,
        p.group,
        a.in,
        a.out,
        p.zeroOffset,
        q.qweight,
        q.qzeros,
        q.scales,
        q.perm,
        q.bits,
        q.group,
        b.in,
        b.out,
        q.zeroOffset,
        ya,
        yb,
      );
    },
    gradInput(w, dy, n, dx, k) {
      const d = w.gptq!;
      k.linearGptqGradInput(
        dy,
        n,
        d.qweight,
        d.qzeros,
        d.scales,
        d.perm,
        d.bits,
        d.group,
        w.in,
        w.out,
        d.zeroOffset,
        dx,
      );
    },
    random(out, inF, seed, std) {
      const per = 32 / bits;
      if (inF % per !== 0)
        throw new YuanError('config', `int${bits} weights need an input size that is a multiple of ${per}, got ${inF}`);
      const group = inF % 128 === 0 ? 128 : inF;
      const groups = inF / group;
      const qweight = new Int32Array((inF / per) * out);
      const k = decodeKernels();
      if (k) k.randomWords(qweight, seed);
      else for (let i = 0; i < qweight.length; i++) qweight[i] = Math.imul(i + 1, 0x9e3779b1) ^ seed;
      // uniform codes around the middle zero point: the variance of a uniform over 2^bits steps is s²·4^bits/12
      const words = Math.ceil((out * bits) / 32);
      const zero = 2 ** (bits - 1) - 1;
      let word = 0;
      for (let j = 0; j < per; j++) word |= zero << (bits * j);
      const qzeros = new Int32Array(groups * words).fill(word);
      const scales = new Uint16Array(groups * out).fill(floatToHalf((std * Math.sqrt(12)) / 2 ** bits));
      const gptq: GptqData = { qweight, qzeros, scales, perm: null, bits, group, zeroOffset: 1 };
      return { format, out, in: inF, bytes: qweight.byteLength + qzeros.byteLength + scales.byteLength, gptq };
    },
  };
  return format;
}

/** `int8`: 8-bit GPTQ layout (qweight/qzeros/scales/g_idx), per channel (group_size −1) or group-wise. */
export const int8Format = gptqFormat(8);
/** `int4`: 4-bit GPTQ layout with group scales and zero points. */
export const int4Format = gptqFormat(4);

/** The built-in weight formats, by name: fp32, bf16, int8, int4. */
export const weightFormatPlugins: readonly TensorWeightFormat[] = [fp32Format, bf16Format, int8Format, int4Format];

/** A GPTQ weight from its parts (for quantizers and tests); sizes are checked. */
export function gptqWeight(data: GptqData, out: number, inF: number): StoredWeight {
  const per = 32 / data.bits;
  const groups = Math.ceil(inF / data.group);
  const words = Math.ceil((out * data.bits) / 32);
  if (
    data.qweight.length !== (inF / per) * out ||
    data.qzeros.length !== groups * words ||
    data.scales.length !== groups * out
  ) {
    throw new YuanError(
      'input',
      `gptqWeight: qweight, qzeros and scales do not match [${out}, ${inF}] with ${data.bits} bits and group ${data.group}`,
    );
  }
  const format = data.bits === 8 ? int8Format : int4Format;
  return {
    format,
    out,
    in: inF,
    bytes: data.qweight.byteLength + data.qzeros.byteLength + data.scales.byteLength,
    gptq: data,
  };
}
