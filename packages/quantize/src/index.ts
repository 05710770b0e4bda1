/**
 * @yuan/quantize: weight quantization as plugins (`rtn`, `gptq`) and the Hugging Face GPTQ layout they write and that
 * `readQuantizedCheckpoint` / `loadQuantizedModel` read back.
 */
export { rtnQuantizer, gptqQuantizer, dequantizeLinear, packLinear, RTN_DEFAULTS, GPTQ_DEFAULTS } from './plugins.js';
export type { GptqOptions } from './gptq.js';
export { packQWeight, unpackQWeight, packQZeros, unpackQZeros, packFactor } from './pack.js';
export { groupGrid, halfCeil, type GroupGrid, type QuantizedValues } from './grid.js';
export { calibrationWindows, CALIBRATION_TEXT_BYTES, type CalibrationOptions } from './calibration.js';
export {
  readQuantizedCheckpoint,
  dequantizedWeights,
  loadQuantizedModel,
  quantizationConfig,
  linearTensors,
  QUANTIZED_SUFFIXES,
  type QuantizedCheckpoint,
  type YuanQuantizationInfo,
} from './layout.js';
export {
  quantizeCheckpoint,
  type QuantizeCheckpointOptions,
  type QuantizeProgress,
  type QuantizeSummary,
} from './run.js';

import { gptqQuantizer as gptq, rtnQuantizer as rtn } from './plugins.js';
/** The plugins this package provides (what `yuan` registers from it): quantizers `rtn` and `gptq`. */
export const plugins = [rtn, gptq];
