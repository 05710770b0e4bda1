import { num, optional, str, type Schema } from '@yuan/core';
import type { ZeroStage } from './engine.js';

/**
 * The fields of the `parallel` config section this package owns, each optional, with its validator: `dp` (data-parallel
 * ranks D, an integer >= 1), `zero` (ZeRO stage 0, 1 or 2) and `transport` (the name of a registered transport plugin,
 * such as `threads` or `tcp`). A bad value is a ConfigError naming `parallel.<field>`, its value and what was expected.
 * `@yuan/parallel-pipeline` merges them with its own fields into the whole section's schema.
 */
export const DATA_PARALLEL_FIELDS: {
  dp: Schema<number | undefined>;
  zero: Schema<ZeroStage | undefined>;
  transport: Schema<string | undefined>;
} = {
  dp: optional(num({ int: true, min: 1 })),
  zero: optional(num({ int: true, min: 0, max: 2 })) as Schema<ZeroStage | undefined>,
  transport: optional(str()),
};

/**
 * Defaults of this package's fields: ZeRO stage 0 (replicated optimizer, gradient all-reduce) and the `threads`
 * transport (ranks a process starts itself are its worker threads; launched ranks always talk `tcp`). `dp` has no fixed
 * default: 1, or WORLD_SIZE / pp when the process is one rank of a launched world.
 */
export const DATA_PARALLEL_DEFAULTS: { zero: ZeroStage; transport: string } = { zero: 0, transport: 'threads' };
