import { bool, num, obj } from '@yuan/core';

/** LFA options; the defaults are YUAN 2.0's final design (two convs of kernel 2, hidden → hidden/2 → hidden, with RMSNorm). */
export interface LfaOptions {
  /** Number of causal convolutions: 1 (hidden → hidden) or 2 (hidden → hidden/2 → hidden). Default 2. */
  convs: 1 | 2;
  /** Convolution kernel size over time (the paper's ablation: 1, 2, 3, 7). Default 2. */
  kernel: number;
  /** Apply RMSNorm after the residual. Default true. */
  norm: boolean;
}

/** YUAN 2.0's LFA. */
export const LFA_DEFAULTS: LfaOptions = { convs: 2, kernel: 2, norm: true };

const schema = obj({
  convs: num({ int: true, min: 1, max: 2 }),
  kernel: num({ int: true, min: 1, max: 64 }),
  norm: bool(),
});

/** Validates LFA options (merged over the defaults); a bad one is named with its value. */
export function parseLfaOptions(options: Record<string, unknown>): LfaOptions {
  const parsed = schema.parse(options, 'attention.options');
  return parsed as LfaOptions;
}
