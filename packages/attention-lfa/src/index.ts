/** @yuan/attention-lfa: YUAN 2.0's Localized Filtering-based Attention as an attention plugin, with the paper's ablation variants. */
export { lfaAttention } from './lfa.js';
export { LFA_DEFAULTS, type LfaOptions } from './options.js';
import { lfaAttention as lfa } from './lfa.js';
/** The plugins this package provides (what `yuan` registers from it): attention `lfa`. */
export const plugins = [lfa];
