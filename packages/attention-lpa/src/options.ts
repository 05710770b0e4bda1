import { ConfigError, num, obj, optional } from '@yuan/core';

/** The four projections of the attention layer, each a low-rank product up·down. */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

/** LPA options. */
export interface LpaOptions {
  /** Rank r of every projection (d×r · r×d); default hidden/4 (rounded down, at least 1). */
  rank?: number;
}

/** Default LPA options: rank hidden/4. */
export const LPA_DEFAULTS: LpaOptions = {};

const schema = obj({ rank: optional(num({ int: true, min: 1 })) });

/** Validates LPA options; a bad one is named with its value. */
export function parseLpaOptions(options: Record<string, unknown>): LpaOptions {
  return schema.parse(options, 'attention.options') as LpaOptions;
}

/** The rank LPA uses for a hidden size (the option, else hidden/4); a rank above the hidden size is an error. */
export function lpaRank(hidden: number, o: LpaOptions): number {
  const r = o.rank ?? Math.max(1, Math.floor(hidden / 4));
  if (r > hidden)
    throw new ConfigError(`invalid config: attention.options.rank = ${r} exceeds model.hiddenSize = ${hidden}`);
  return r;
}
