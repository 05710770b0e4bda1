/** @yuan/attention-lpa: Low-dimensional Projected Attention (low-rank Q/K/V/O projections) as an attention plugin. */
export { lpaAttention } from './lpa.js';
export { LPA_DEFAULTS, type LpaOptions } from './options.js';
import { lpaAttention as lpa } from './lpa.js';
/** The plugins this package provides (what `yuan` registers from it): attention `lpa`. */
export const plugins = [lpa];
