// Test helpers: a round-to-nearest (RTN) quantizer with zero points that writes the Hugging Face GPTQ layout, and a raw
// safetensors writer for its int32 / fp16 tensors. Only for tests: `yuan quantize` is the real quantizer.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { floatToHalf, halfToFloat } from '../../tensor/src/half.js';

/** A tensor to write as raw little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32';
  shape: number[];
  data: Uint8Array;
}

/** Writes a safetensors file of raw tensors. */
export function writeRawSafetensors(file: string, tensors: readonly RawTensor[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(
    file,
    Buffer.concat([
      len,
      Buffer.from(json),
      ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    ]),
  );
}

/** Reads every tensor of a safetensors file as raw bytes. */
export function readRawSafetensors(file: string): RawTensor[] {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: RawTensor['dtype']; shape: number[]; data_offsets: [number, number] }
  >;
  return Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, e]) => ({
      name,
      dtype: e.dtype,
      shape: e.shape,
      data: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])),
    }));
}

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * RTN with zero points of W [out, in] (fp32 values) in groups of `group` inputs: scale = (max − min)/(2^bits − 1) per
 * group and column (fp16), zero = round(−min/scale), q = clamp(round(w/scale) + zero); stored zeros are zero − 1
 * (AutoGPTQ's "gptq" checkpoint format). Returns the four GPTQ tensors (trivial g_idx).
 */
export function rtnGptq(
  w: Float32Array,
  out: number,
  inF: number,
  bits: 4 | 8,
  group: number,
  actOrder = false,
): { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array; gIdx: Int32Array } {
  // act-order: groups are formed over the inputs in a scrambled order (GPTQ orders them by Hessian diagonal); rows stay
  // in their original order and g_idx names each row's group
  const order = Array.from({ length: inF }, (_, k) => (actOrder ? (k * 5 + 3) % inF : k));
  if (new Set(order).size !== inF) throw new Error('rtnGptq: 5 must be coprime with in for the act-order test');
  const per = 32 / bits;
  const groups = Math.ceil(inF / group);
  const top = 2 ** bits - 1;
  const qweight = new Int32Array((inF / per) * out);
  const words = Math.ceil((out * bits) / 32);
  const qzeros = new Int32Array(groups * words);
  const scales = new Uint16Array(groups * out);
  for (let c = 0; c < out; c++) {
    for (let g = 0; g < groups; g++) {
      const k0 = g * group;
      const k1 = Math.min(inF, k0 + group);
      let lo = 0;
      let hi = 0;
      for (let j = k0; j < k1; j++) {
        lo = Math.min(lo, w[c * inF + order[j]]);
        hi = Math.max(hi, w[c * inF + order[j]]);
      }
      const s16 = floatToHalf((hi - lo) / top || 1e-8);
      const s = halfToFloat(s16);
      const zero = Math.min(top, Math.max(1, Math.round(-lo / s)));
      scales[g * out + c] = s16;
      qzeros[g * words + Math.floor(c / per)] |= (zero - 1) << (bits * (c % per));
      for (let j = k0; j < k1; j++) {
        const k = order[j];
        const q = Math.min(top, Math.max(0, Math.round(w[c * inF + k] / s) + zero));
        qweight[Math.floor(k / per) * out + c] |= q << (bits * (k % per));
      }
    }
  }
  const gIdx = new Int32Array(inF);
  order.forEach((k, j) => (gIdx[k] = Math.floor(j / group)));
  return { qweight, qzeros, scales, gIdx };
}

/** The linear layers a GPTQ checkpoint quantizes (per decoder layer). */
export const QUANTIZED = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.up_proj',
  'mlp.gate_proj',
  'mlp.down_proj',
];

/**
 * Copies an fp32 checkpoint folder (config.json + model.safetensors) into `out` with its decoder layers' linear weights
 * RTN-quantized in the GPTQ layout, `quantization_config` added; embeddings and norms stay F32, and so do LFA's
 * convolutions unless `convs` (then packed as [out, in·K] with their shapes in `quantization_config.yuan.weightShapes`,
 * as `yuan quantize` writes them).
 */
export function quantizeFolder(
  src: string,
  out: string,
  bits: 4 | 8,
  group: number,
  actOrder = false,
  convs = false,
): void {
  const config = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
  config.quantization_config = { quant_method: 'gptq', bits, group_size: group, desc_act: actOrder, sym: false };
  const weightShapes: Record<string, number[]> = {};
  const tensors: RawTensor[] = [];
  for (const t of readRawSafetensors(path.join(src, 'model.safetensors'))) {
    const base = t.name.replace(/\.weight$/, '');
    const conv = convs && /lf_gate\.conv\d\.weight$/.test(t.name);
    if ((!QUANTIZED.some((q) => base.endsWith(q)) && !conv) || t.dtype !== 'F32') {
      tensors.push(t);
      continue;
    }
    if (conv) weightShapes[t.name.replace(/^model\.layers\.\d+\./, '')] = t.shape;
    const o = t.shape[0];
    const i = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const w = new Float32Array(t.data.slice().buffer);
    const q = rtnGptq(w, o, i, bits, group === -1 ? i : group, actOrder);
    const groups = Math.ceil(i / (group === -1 ? i : group));
    tensors.push(
      { name: `${base}.qweight`, dtype: 'I32', shape: [(i * bits) / 32, o], data: bytes(q.qweight) },
      { name: `${base}.qzeros`, dtype: 'I32', shape: [groups, Math.ceil((o * bits) / 32)], data: bytes(q.qzeros) },
      { name: `${base}.scales`, dtype: 'F16', shape: [groups, o], data: bytes(q.scales) },
      { name: `${base}.g_idx`, dtype: 'I32', shape: [i], data: bytes(q.gIdx) },
    );
  }
  if (convs) config.quantization_config.yuan = { weightShapes };
  writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2));
  writeRawSafetensors(path.join(out, 'model.safetensors'), tensors);
  for (const f of ['tokenizer.model']) {
    try {
      copyFileSync(path.join(src, f), path.join(out, f));
    } catch {
      // optional
    }
  }
}
