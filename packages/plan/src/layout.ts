import {
  ConfigError,
  microbatchesPerRank,
  num,
  obj,
  optional,
  str,
  YuanError,
  type Schema,
  type YuanConfig,
} from '@yuan/core';
import { isBlocksSpec, parseBlocks } from './partition.js';
import type { Recompute } from './plan.js';

/** ZeRO stage: 0 replicated optimizer (gradient all-reduce); 1 optimizer states sharded; 2 gradients sharded too. */
export type ZeroStage = 0 | 1 | 2;

/**
 * The data-parallel fields of the `parallel` section, each optional, with its validator: `dp` (data-parallel ranks D,
 * an integer >= 1), `zero` (ZeRO stage 0, 1 or 2, run by `@yuan/parallel-zero`) and `transport` (the name of a
 * registered transport plugin of `@yuan/comm`, such as `threads` or `tcp`). A bad value is a ConfigError naming
 * `parallel.<field>`, its value and what was expected.
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
 * Defaults of the data-parallel fields: ZeRO stage 0 (replicated optimizer, gradient all-reduce) and the `threads`
 * transport (ranks a process starts itself are its worker threads; launched ranks always talk `tcp`). `dp` has no fixed
 * default: 1, or WORLD_SIZE / pp when the process is one rank of a launched world.
 */
export const DATA_PARALLEL_DEFAULTS: { zero: ZeroStage; transport: string } = { zero: 0, transport: 'threads' };

/**
 * A run's parallel layout: the resolved `parallel` config section. JSON-serialisable, so ranks started by threads,
 * processes or a launcher get it with the config instead of re-reading flags. With every field at its default it is
 * the single-process trainer.
 */
export interface ParallelLayout {
  /** Pipeline stages P. Default 1. */
  pp: number;
  /** Data-parallel ranks D per stage (the world is P × D ranks). Default 1, or WORLD_SIZE / P in a launched world. */
  dp: number;
  /** ZeRO stage inside each data-parallel group: 0 replicated, 1 optimizer states sharded, 2 gradients too. Default 0. */
  zero: ZeroStage;
  /** Layers per stage: a partitioner name (`uniform`, `parameters`, `memory`, a plugin) or blocks (`2,2,3,3`, `2x10,3x20,2x2`). Default `uniform`. */
  partition: string;
  /** Pipeline schedule (`1f1b`, `gpipe`, a plugin). Default `1f1b`. */
  schedule: string;
  /**
   * What a pipeline stage, or a ZeRO-2 rank's layer-by-layer backward, keeps between a forward and its backward
   * (`Recompute`): `none` (everything the backward reads; no forward runs twice), `selective` (the attention scores
   * recomputed), `full` (each layer's input; each layer recomputed), `stage` (a pipeline stage's input only). Default `none`.
   */
  recompute: Recompute;
  /**
   * Transport between ranks (a registered transport plugin). Default `threads`: ranks this process starts are its
   * worker threads; another name (`tcp`) starts them as local processes. Launched ranks use `tcp` when it is `threads`.
   */
  transport: string;
  /** Micro-batches per optimizer step for the whole job M (global batch M × train.microBatchSize); each data-parallel rank runs M/D. Default train.gradAccumulation, else 1. */
  microbatches: number;
}

/** A field of the `parallel` section. */
export type ParallelField = keyof ParallelLayout;

/** Defaults of the fields that have fixed ones (`dp` and `microbatches` depend on the world and the `train` section). */
export const PARALLEL_DEFAULTS: Omit<ParallelLayout, 'dp' | 'microbatches'> = {
  pp: 1,
  zero: DATA_PARALLEL_DEFAULTS.zero,
  partition: 'uniform',
  schedule: '1f1b',
  recompute: 'none',
  transport: DATA_PARALLEL_DEFAULTS.transport,
};

function invalid(path: string, value: unknown, expected: string): never {
  throw new ConfigError(`invalid config: ${path} = ${JSON.stringify(value)}; expected ${expected}`);
}

const RECOMPUTE_EXPECTED = '"none", "selective", "full" or "stage"';
const RECOMPUTES: readonly unknown[] = ['none', 'selective', 'full', 'stage'];
const recomputeSchema: Schema<Recompute> = {
  expected: RECOMPUTE_EXPECTED,
  parse: (value, path) =>
    RECOMPUTES.includes(value) ? (value as Recompute) : invalid(path, value, RECOMPUTE_EXPECTED),
};

const PARTITION_EXPECTED =
  'a partitioner name (uniform, parameters, memory, a plugin) or blocks such as "2,2,3,3" or "2x10,3x20,2x2"';
/** A partitioner name or blocks; blocks may also be written as a number (one stage) or an array of layer counts. */
const partitionSchema: Schema<string> = {
  expected: PARTITION_EXPECTED,
  parse(value, path) {
    const spec =
      typeof value === 'number'
        ? String(value)
        : Array.isArray(value) && value.every((n) => typeof n === 'number')
          ? value.join(',')
          : value;
    if (typeof spec !== 'string' || spec.trim() === '') invalid(path, value, PARTITION_EXPECTED);
    if (!isBlocksSpec(spec)) return spec.trim();
    try {
      parseBlocks(spec);
    } catch {
      invalid(
        path,
        value,
        'blocks of comma-separated layer counts, each at least 1, such as "2,2,3,3" or "2x10,3x20,2x2"',
      );
    }
    return spec.trim();
  },
};

/**
 * The fields of the `parallel` section this package owns, each optional, with its validator: `pp`, `partition`,
 * `schedule`, `recompute`, `microbatches`. Whether a partitioner or schedule name is registered is checked where the
 * registry is at hand (`parallelEngine`, `planPipeline`).
 */
export const PIPELINE_FIELDS: {
  pp: Schema<number | undefined>;
  partition: Schema<string | undefined>;
  schedule: Schema<string | undefined>;
  recompute: Schema<Recompute | undefined>;
  microbatches: Schema<number | undefined>;
} = {
  pp: optional(num({ int: true, min: 1 })),
  partition: optional(partitionSchema),
  schedule: optional(str()),
  recompute: optional(recomputeSchema),
  microbatches: optional(num({ int: true, min: 1 })),
};

/**
 * The schema of the whole `parallel` section: the pipeline fields and the data-parallel ones (`dp`, `zero`,
 * `transport`), all optional. An unknown field, or a value of the wrong type or range, is a ConfigError naming
 * `parallel.<field>`, the value and what was expected.
 */
export const PARALLEL_SCHEMA: Schema<Partial<ParallelLayout>> = obj({
  ...PIPELINE_FIELDS,
  ...DATA_PARALLEL_FIELDS,
}) as Schema<Partial<ParallelLayout>>;

/** How errors name the layout's fields: by a command-line flag where the value came from one, else as `parallel.<field>`. */
export interface LayoutNaming {
  /** The flag that sets each field (`pp: '--pp'`), and `timeout` for `timeoutSeconds`: hints say how to set a field with it. */
  flags?: Partial<Record<ParallelField | 'timeout', string>>;
  /**
   * Fields whose value came from a flag (the user asked for them explicitly): errors name them by their flag, and one
   * the resolved layout would ignore (a pipeline field with P = 1, `zero` without data parallelism, `transport` for a
   * single process) is an error instead of being silently dropped.
   */
  given?: readonly (ParallelField | 'timeout')[];
}

/** Error wording for fields, from a LayoutNaming. */
export interface FieldNames {
  /** The field as the user set it: `--pp` or `parallel.pp`. */
  field(f: ParallelField | 'timeout'): string;
  /** The field with its value: `--pp 2` or `parallel.pp = 2`. */
  label(f: ParallelField, value: unknown): string;
  /** How to set it: `add --pp P` or `set parallel.pp`. */
  hint(f: ParallelField, placeholder: string): string;
}

/** The FieldNames of a naming (default: every field as `parallel.<field>`). */
export function fieldNames(naming: LayoutNaming = {}): FieldNames {
  const given = new Set(naming.given ?? []);
  const field = (f: ParallelField | 'timeout') =>
    given.has(f) && naming.flags?.[f] ? naming.flags[f]! : f === 'timeout' ? 'timeoutSeconds' : `parallel.${f}`;
  return {
    field,
    label: (f, v) => (field(f).startsWith('-') ? `${field(f)} ${v}` : `${field(f)} = ${v}`),
    hint: (f, p) => (naming.flags?.[f] ? `add ${naming.flags[f]} ${p}` : `set parallel.${f}`),
  };
}

/** Options of `parallelLayout`. */
export interface LayoutOptions {
  /** Ranks of the launched world this process belongs to (WORLD_SIZE), when it is one; it must be P × D. */
  worldSize?: number;
  /** How errors name fields. */
  naming?: LayoutNaming;
  /** Whether a field in `naming.given` that the resolved layout would ignore is an error (for a run; a plan allows it). Default true. */
  rejectIgnored?: boolean;
}

/**
 * Validates the config's `parallel` section (`PARALLEL_SCHEMA`) and resolves it into a layout: defaults filled in, D
 * from the world (WORLD_SIZE / P) when the section leaves it out and `worldSize` is given, M from `parallel.microbatches`
 * or `train.gradAccumulation`. One-line errors naming the fields: a bad value; a world that is not P × D; D not
 * dividing M; `parallel.microbatches` and `train.gradAccumulation` that disagree; with `naming.given` (unless
 * `rejectIgnored` is false), a field asked for that the layout would ignore. Whether P fits the model and names are registered is checked by `parallelEngine`.
 */
export function parallelLayout(config: YuanConfig, options: LayoutOptions = {}): ParallelLayout {
  const raw = PARALLEL_SCHEMA.parse(config.parallel ?? {}, 'parallel');
  const names = fieldNames(options.naming);
  const given = new Set(options.rejectIgnored === false ? [] : (options.naming?.given ?? []));
  const pp = raw.pp ?? PARALLEL_DEFAULTS.pp;
  const world = options.worldSize;
  let dp = raw.dp ?? 1;
  if (world !== undefined) {
    if (raw.dp === undefined) {
      if (world % pp !== 0)
        throw new YuanError(
          'usage',
          `the world has ${world} ranks, not a multiple of ${names.label('pp', pp)}: WORLD_SIZE must be P × D`,
        );
      dp = world / pp;
    } else if (world !== pp * dp) {
      throw new YuanError(
        'usage',
        pp > 1
          ? `the world has ${world} ranks but ${names.label('pp', pp)} × ${names.label('dp', dp)} needs ${pp * dp}: WORLD_SIZE must be P × D`
          : `the world has ${world} ranks but ${names.field('dp')} is ${dp}: start as many ranks as ${names.field('dp')} (or leave it out)`,
      );
    }
  }
  const accumulation = (config.train as { gradAccumulation?: unknown } | undefined)?.gradAccumulation;
  if (raw.microbatches !== undefined && typeof accumulation === 'number' && accumulation !== raw.microbatches) {
    throw new YuanError(
      'usage',
      `${names.label('microbatches', raw.microbatches)} and train.gradAccumulation = ${accumulation} disagree: both are the micro-batches of one optimizer step; set one of them`,
    );
  }
  const microbatches = raw.microbatches ?? (typeof accumulation === 'number' ? accumulation : 1);
  microbatchesPerRank(
    microbatches,
    dp,
    world !== undefined && raw.dp === undefined
      ? `the world's ${dp} data-parallel ranks (WORLD_SIZE / ${names.field('pp')})`
      : names.label('dp', dp),
  );
  if (pp === 1) {
    const ignored = (['partition', 'schedule'] as const).find((f) => given.has(f));
    if (ignored)
      throw new YuanError('usage', `${names.field(ignored)} applies to a pipeline: ${names.hint('pp', 'P')} (P > 1)`);
    // one process or ZeRO 0/1 runs one backward over the whole model (keeping everything); ZeRO 2 runs it layer by layer
    const zero2 = (raw.zero ?? 0) === 2;
    if (given.has('recompute') && !zero2)
      throw new YuanError(
        'usage',
        `${names.field('recompute')} applies to a pipeline or to ZeRO 2's layer-by-layer backward: ${names.hint('pp', 'P')} (P > 1) or ${names.hint('zero', '2').replace(/^add /, '')}`,
      );
    if (raw.recompute === 'stage' && zero2)
      throw new YuanError(
        'usage',
        `${names.label('recompute', 'stage')} applies to a pipeline stage: ZeRO 2 without a pipeline takes none, selective or full`,
      );
  }
  if (world === undefined && raw.dp === undefined) {
    // the same rule for flags as before: --zero without --dp, --transport without --dp or --pp, outside a launched world
    const launchHint = '(or start the ranks with yuan launch, torchrun, srun or an indexed Job)';
    if (given.has('zero'))
      throw new YuanError(
        'usage',
        `${names.field('zero')} applies to data parallelism: ${names.hint('dp', 'D')} ${launchHint}`,
      );
    if (given.has('transport') && pp === 1)
      throw new YuanError(
        'usage',
        `${names.field('transport')} applies to parallel runs: ${names.hint('dp', 'D')} or ${names.hint('pp', 'P').replace(/^add /, '')} ${launchHint}`,
      );
  }
  return {
    pp,
    dp,
    zero: raw.zero ?? PARALLEL_DEFAULTS.zero,
    partition: raw.partition ?? PARALLEL_DEFAULTS.partition,
    schedule: raw.schedule ?? PARALLEL_DEFAULTS.schedule,
    recompute: raw.recompute ?? PARALLEL_DEFAULTS.recompute,
    transport: raw.transport ?? PARALLEL_DEFAULTS.transport,
    microbatches,
  };
}

/**
 * The config a run under `layout` trains with: `parallel` is the resolved layout and `train.gradAccumulation` its M
 * (what the engines read). This is what crosses to the ranks, and what their start-up hash compares.
 */
export function withParallelLayout(config: YuanConfig, layout: ParallelLayout): YuanConfig {
  return {
    ...config,
    parallel: { ...layout },
    train: { ...((config.train as object | undefined) ?? {}), gradAccumulation: layout.microbatches },
  };
}
