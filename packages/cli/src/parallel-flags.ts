import { resolveConfig, YuanError, type JsonObject, type YuanConfig } from '@yuan/core';
import type { LayoutNaming, ParallelField } from '@yuan/plan';
import { numberOption, type OptionSpec } from './command.js';

/** The flags of the parallel layout (`yuan train`, `yuan plan`); each maps onto the `parallel` config field of its name. */
export const PARALLEL_OPTIONS: OptionSpec = {
  pp: { type: 'string' },
  dp: { type: 'string' },
  zero: { type: 'string' },
  partition: { type: 'string' },
  schedule: { type: 'string' },
  recompute: { type: 'string' },
  transport: { type: 'string' },
  microbatches: { type: 'string' },
};

const FIELDS: readonly ParallelField[] = [
  'pp',
  'dp',
  'zero',
  'partition',
  'schedule',
  'recompute',
  'transport',
  'microbatches',
];

/**
 * The config with the layout flags given in `values` laid over its `parallel` section (flags win over presets, files
 * and --set), and how errors name the fields (`--pp` where a flag set it, else `parallel.pp`). Flags a command does
 * not declare are absent from `values` and change nothing. Flag values are parsed here (a one-line usage error naming
 * the flag); the section as a whole is validated by `parallelLayout` of @yuan/plan.
 */
export async function withParallelFlags(
  config: YuanConfig,
  values: Record<string, unknown>,
): Promise<{ config: YuanConfig; naming: LayoutNaming }> {
  const layer: JsonObject = {};
  for (const f of ['pp', 'dp', 'microbatches'] as const)
    if (values[f] !== undefined) layer[f] = numberOption(values, f, 1, { int: true, min: 1 });
  if (values.zero !== undefined) {
    const zero = numberOption(values, 'zero', 0, { int: true, min: 0 });
    if (zero > 2) throw new YuanError('usage', `--zero ${zero} must be 0, 1 or 2`);
    layer.zero = zero;
  }
  if (values.recompute !== undefined) {
    // the model loads with this package, so only when the flag is given (`yuan train --help` stays fast)
    const { parseRecompute } = await import('@yuan/plan');
    layer.recompute = parseRecompute(values.recompute as string);
  }
  for (const f of ['partition', 'schedule', 'transport'] as const)
    if (values[f] !== undefined) layer[f] = values[f] as string;
  const given: (ParallelField | 'timeout')[] = FIELDS.filter((f) => values[f] !== undefined);
  if (values.timeout !== undefined) given.push('timeout');
  const flags = Object.fromEntries([...FIELDS, 'timeout'].map((f) => [f, `--${f}`]));
  const merged = Object.keys(layer).length
    ? resolveConfig(config as unknown as JsonObject, { parallel: layer })
    : config;
  return { config: merged, naming: { flags, given } };
}
