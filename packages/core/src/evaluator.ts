import type { ModelAdapter } from './adapter.js';
import type { PluginBase } from './registry.js';

/** Settings shared by every evaluation run. Defaults (set by the caller): n 1, k [1], temperature 0, workers 1. */
export interface EvalSettings {
  /** Completions sampled per task. */
  n: number;
  /** The k of pass@k or maj@k; each must be at most n. */
  k: number[];
  temperature: number;
  topP?: number;
  /** New tokens per completion (the evaluator's own default when absent). */
  maxNewTokens?: number;
  /** Only the first `limit` tasks. */
  limit?: number;
  /** Concurrent generations and sandboxed executions. */
  workers: number;
  seed?: number;
  /** Folder holding the data sets (`humaneval/`, `gsm8k/`, `agieval/`, ...). */
  dataDir: string;
}

/** Everything an evaluator needs for one run: a model or supplied completions, and where per-sample records go. */
export interface EvalContext {
  settings: EvalSettings;
  /** The model under test; absent when completions are supplied. */
  model?: ModelAdapter;
  /** Completions supplied instead of a model (`--samples`): task id → completions in file order. */
  completions?: Map<string, string[]>;
  /** Receives one JSON record per scored sample (the audit log). */
  log(record: Record<string, unknown>): void;
  /** Reports progress in tasks. */
  progress?(done: number, total: number): void;
}

/** The aggregate result of an evaluation: named metrics in [0, 1] (or nats for perplexity) over `count` tasks. */
export interface EvalResult {
  task: string;
  metrics: Record<string, number>;
  count: number;
  /** Settings and facts needed to reproduce or read the numbers (prompt style, isolation, ...). */
  details?: Record<string, unknown>;
}

/**
 * An evaluator (`humaneval`, `gsm8k`, `agieval`, `perplexity`, ...). It loads its tasks, builds prompts, generates
 * through `ctx.model` (or takes `ctx.completions`), extracts and scores each sample (logging it) and aggregates.
 */
/**
 * A command-line flag an evaluator declares for one of its options (`--timeout 10` → `timeoutMs: 10000`), so `yuan
 * eval` offers it without knowing the evaluator. `seconds` values become milliseconds.
 */
export interface EvaluatorFlag {
  option: string;
  /** `int`: an integer ≥ 1; `integer`: any integer; `seconds` values become milliseconds. */
  type: 'string' | 'int' | 'integer' | 'number' | 'seconds' | 'boolean';
  /** One line for `yuan eval TASK --help`. */
  help?: string;
}

export interface EvaluatorPlugin<Options = Record<string, unknown>> extends PluginBase<'evaluator', Options> {
  /** Flags `yuan eval` accepts for this evaluator, by flag name (without `--`). */
  readonly flags?: Readonly<Record<string, EvaluatorFlag>>;
  evaluate(ctx: EvalContext, options: Options): Promise<EvalResult>;
}
