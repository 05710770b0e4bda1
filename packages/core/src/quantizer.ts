import type { PluginBase } from './registry.js';

/**
 * The grid every quantizer writes, as the Hugging Face GPTQ layout's `quantization_config` names it: `bits` per weight,
 * `groupSize` input columns per scale and zero point (−1: one group per output row), `sym` for a zero point fixed at
 * 2^(bits−1) instead of one per group from the group's min and max.
 */
export interface QuantizeGrid {
  /** Bits per weight: 4 or 8 (the layout packs 32/bits values into each int32). */
  bits: number;
  /** Input columns per group (a positive integer), or −1 for one group over the whole input (per channel). */
  groupSize: number;
  /** Symmetric grid: zero point 2^(bits−1), scale 2·max|w|/(2^bits − 1); else asymmetric min/max with a zero point. */
  sym: boolean;
}

/**
 * One linear layer to quantize: `weight` [rows = out, cols = in] row-major (PyTorch layout, y = x·Wᵀ), and for a
 * quantizer that uses calibration data, `hessian` = 2/N·XᵀX [cols, cols] over the N calibration inputs X [N, cols] that
 * reached the layer (row-major, symmetric).
 */
export interface LinearToQuantize {
  /** The weight's name (`model.layers.0.self_attn.v_proj.weight`), for messages. */
  name: string;
  weight: Float32Array;
  rows: number;
  cols: number;
  hessian?: Float64Array;
}

/**
 * A quantized linear in the Hugging Face GPTQ (AutoGPTQ) layout, the arrays exactly as the checkpoint stores them.
 * With pack = 32/bits, value k of an int32 sits in bits [k·bits, (k+1)·bits) (the first value in the lowest bits):
 * `qweight` [cols/pack, rows]: qweight[i/pack][o] holds q[o][i]; `qzeros` [groups, rows/pack]: qzeros[g][o/pack] holds
 * the zero point of row o in group g; `scales` [groups, rows] (float16 values); `gIdx` [cols]: the group of each input
 * column. The weight is w[o][i] = scales[g][o]·(q[o][i] − zero[g][o]) with g = gIdx[i]. With `checkpointFormat`
 * `gptq` (AutoGPTQ's v1, what Hugging Face checkpoints hold) `qzeros` stores zero − 1, so zero points lie in
 * [1, 2^bits − 1]; with `gptq_v2` (gptqmodel) it stores the zero point itself.
 */
export interface QuantizedLinear {
  rows: number;
  cols: number;
  bits: number;
  /** Input columns per group, −1 for per channel (one group). */
  groupSize: number;
  checkpointFormat: 'gptq' | 'gptq_v2';
  qweight: Int32Array;
  qzeros: Int32Array;
  /** Values that float16 represents exactly (the checkpoint stores them as F16). */
  scales: Float32Array;
  gIdx: Int32Array;
}

/**
 * A quantizer (`rtn`, `gptq`, ...): turns one linear's float weight into the GPTQ layout. Options are the grid plus the
 * method's own (merged over `defaults`, checked by `validate`). A `calibrated` quantizer needs `hessian` on every
 * linear: the caller runs calibration text through the model, layer by layer, to make it.
 */
export interface QuantizerPlugin<Options extends QuantizeGrid = QuantizeGrid> extends PluginBase<'quantizer', Options> {
  /** Whether `quantize` needs the layer's input statistics (`LinearToQuantize.hessian`). */
  readonly calibrated: boolean;
  /** Quantizes one linear; a bad shape, a missing hessian or a failed factorisation is an error naming the layer. */
  quantize(linear: LinearToQuantize, options: Options): Promise<QuantizedLinear>;
  /** The float weight [rows, cols] a quantized linear stands for (what a loader that dequantizes computes with). */
  dequantize(q: QuantizedLinear): Float32Array;
}
