import {
  ConfigError,
  YuanError,
  type LinearToQuantize,
  type QuantizedLinear,
  type QuantizeGrid,
  type QuantizerPlugin,
} from '@yuan/core';
import { checkGrid, type QuantizedValues } from './grid.js';
import { gptqKernels, gptqValues, type GptqOptions } from './gptq.js';
import { packQWeight, packQZeros, unpackQWeight, unpackQZeros } from './pack.js';
import { rtnValues } from './rtn.js';

/** Packs a quantizer's values into the GPTQ layout (AutoGPTQ v1: `qzeros` stores zero − 1). */
export function packLinear(v: QuantizedValues, rows: number, cols: number, grid: QuantizeGrid): QuantizedLinear {
  return {
    rows,
    cols,
    bits: grid.bits,
    groupSize: grid.groupSize,
    checkpointFormat: 'gptq',
    qweight: packQWeight(v.q, rows, cols, grid.bits),
    qzeros: packQZeros(v.zeros, v.groups, rows, grid.bits, 1),
    scales: v.scales,
    gIdx: v.gIdx,
  };
}

/**
 * The float weight [rows, cols] (row-major) of a quantized linear in the GPTQ layout: w[o][i] = scales[g][o]·(q[o][i] −
 * zero[g][o]), g = gIdx[i], zero points unpacked with the offset of its `checkpointFormat` (v1 `gptq`: stored + 1).
 * Inconsistent array sizes or a group index outside the scales are errors.
 */
export function dequantizeLinear(ql: QuantizedLinear): Float32Array {
  const { rows, cols, bits } = ql;
  const groups = ql.scales.length / rows;
  if (!Number.isInteger(groups) || groups < 1)
    throw new YuanError('quantize', `scales hold ${ql.scales.length} values, not [groups, ${rows}]`);
  if (ql.gIdx.length !== cols)
    throw new YuanError('quantize', `g_idx holds ${ql.gIdx.length} values; ${cols} expected`);
  const q = unpackQWeight(ql.qweight, rows, cols, bits);
  const zeros = unpackQZeros(ql.qzeros, groups, rows, bits, ql.checkpointFormat === 'gptq' ? 1 : 0);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < cols; i++) {
    const g = ql.gIdx[i];
    if (!(g >= 0 && g < groups)) throw new YuanError('quantize', `g_idx[${i}] = ${g} is outside the ${groups} groups`);
    const base = g * rows;
    for (let o = 0; o < rows; o++) out[o * cols + i] = ql.scales[base + o] * (q[o * cols + i] - zeros[base + o]);
  }
  return out;
}

/** Merged options checked against the known keys and types; an unknown key or bad value names itself. */
function checkOptions<T extends object>(who: string, defaults: T, options: Record<string, unknown>): T {
  for (const k of Object.keys(options)) {
    if (!(k in defaults))
      throw new ConfigError(`quantizer ${who}: unknown option "${k}" (options: ${Object.keys(defaults).join(', ')})`);
  }
  const o = { ...defaults, ...options } as T;
  checkGrid(o as unknown as QuantizeGrid, `quantizer ${who}`);
  return o;
}

function checkLinear(l: LinearToQuantize): void {
  if (
    !(Number.isInteger(l.rows) && Number.isInteger(l.cols) && l.rows > 0 && l.cols > 0) ||
    l.weight.length !== l.rows * l.cols
  ) {
    throw new YuanError('quantize', `${l.name}: weight of ${l.weight.length} values is not [${l.rows}, ${l.cols}]`);
  }
}

/** Defaults of the `rtn` quantizer: 4 bits, groups of 128 input columns, asymmetric (min/max with a zero point). */
export const RTN_DEFAULTS: QuantizeGrid = { bits: 4, groupSize: 128, sym: false };

/** Round to nearest, per group of input columns (no calibration): the baseline GPTQ is measured against. */
export const rtnQuantizer: QuantizerPlugin<QuantizeGrid> = {
  kind: 'quantizer',
  name: 'rtn',
  description: 'round to nearest per group (min/max grid with a zero point, or symmetric); no calibration data',
  defaults: RTN_DEFAULTS,
  calibrated: false,
  validate: (options) => checkOptions('rtn', RTN_DEFAULTS, options),
  async quantize(linear, options) {
    checkLinear(linear);
    checkGrid(options, 'quantizer rtn');
    return packLinear(rtnValues(linear.weight, linear.rows, linear.cols, options), linear.rows, linear.cols, options);
  },
  dequantize: dequantizeLinear,
};

/** Defaults of the `gptq` quantizer: the grid of `rtn`, no act-order, damp 0.01, blocks of 128 columns. */
export const GPTQ_DEFAULTS: GptqOptions = { ...RTN_DEFAULTS, actOrder: false, damp: 0.01, blockSize: 128 };

function checkGptq(o: GptqOptions): GptqOptions {
  if (typeof o.actOrder !== 'boolean')
    throw new ConfigError(`quantizer gptq: actOrder ${JSON.stringify(o.actOrder)}; expected true or false`);
  if (!(typeof o.damp === 'number' && o.damp >= 0 && Number.isFinite(o.damp)))
    throw new ConfigError(`quantizer gptq: damp ${JSON.stringify(o.damp)}; expected a number >= 0`);
  if (!(Number.isInteger(o.blockSize) && o.blockSize > 0))
    throw new ConfigError(`quantizer gptq: blockSize ${JSON.stringify(o.blockSize)}; expected a positive integer`);
  return o;
}

/**
 * GPTQ (Frantar et al. 2022): column-by-column rounding with the error compensated through the inverse Hessian of the
 * layer's calibration inputs; optional act-order. Needs `hessian` on every linear.
 */
export const gptqQuantizer: QuantizerPlugin<GptqOptions> = {
  kind: 'quantizer',
  name: 'gptq',
  description:
    'GPTQ: per-column error compensation with the inverse Hessian of calibration inputs (options: actOrder, damp, blockSize)',
  defaults: GPTQ_DEFAULTS,
  calibrated: true,
  validate: (options) => checkGptq(checkOptions('gptq', GPTQ_DEFAULTS, options)),
  async quantize(linear, options) {
    checkLinear(linear);
    checkGrid(options, 'quantizer gptq');
    checkGptq(options);
    if (!linear.hessian)
      throw new YuanError('quantize', `${linear.name}: gptq needs the Hessian of the layer's calibration inputs`);
    return packLinear(
      gptqValues(linear.weight, linear.rows, linear.cols, linear.hessian, options, linear.name, await gptqKernels()),
      linear.rows,
      linear.cols,
      options,
    );
  },
  dequantize: dequantizeLinear,
};
