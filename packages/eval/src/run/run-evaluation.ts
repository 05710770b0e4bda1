import path from 'node:path';
import type { EvalResult, EvalSettings, EvaluatorPlugin, ModelAdapter, PluginRegistry } from '@yuan/core';
import { defaultDataDir } from '../data/default-dir.js';
import { evalRegistry } from '../tasks/registry.js';
import { AtomicJsonLines, writeFileAtomic } from './atomic.js';

/** One evaluation run. Settings default to n 1, k [1], temperature 0, workers 2 and the shared data folder. */
export interface RunEvaluationOptions {
  /** An evaluator plugin, or its name (`humaneval`, `gsm8k`, ...) looked up in `registry`. */
  evaluator: string | EvaluatorPlugin;
  /** Where an evaluator name is looked up (kind `evaluator`). Default: a registry of this package's plugins. */
  registry?: PluginRegistry;
  /** Evaluator options merged over its defaults. */
  options?: Record<string, unknown>;
  settings?: Partial<EvalSettings>;
  model?: ModelAdapter;
  completions?: Map<string, string[]>;
  /** Folder for `<task>-samples.jsonl` and `<task>-summary.json`; nothing is written when absent. */
  outputDir?: string;
  progress?: (done: number, total: number) => void;
}

/** What a run produced: the result, and the files it wrote. */
export interface RunEvaluationResult {
  result: EvalResult;
  samplesFile?: string;
  summaryFile?: string;
  records: number;
}

/** The evaluator of that name in `registry` (default: a registry of this package's plugins); an unknown name lists the registered ones. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function getEvaluator(name: string, registry: PluginRegistry = evalRegistry()): EvaluatorPlugin<any> {
  return registry.get('evaluator', name);
}

/** Runs an evaluator, writing the per-sample log and the summary atomically when `outputDir` is given. */
export async function runEvaluation(opts: RunEvaluationOptions): Promise<RunEvaluationResult> {
  const plugin = typeof opts.evaluator === 'string' ? getEvaluator(opts.evaluator, opts.registry) : opts.evaluator;
  const merged = { ...(plugin.defaults as Record<string, unknown>), ...(opts.options ?? {}) };
  const options = plugin.validate ? plugin.validate(merged) : merged;
  const settings: EvalSettings = {
    n: 1,
    k: [1],
    temperature: 0,
    workers: 2,
    dataDir: defaultDataDir(),
    ...opts.settings,
  };
  let log: AtomicJsonLines | undefined;
  let samplesFile: string | undefined;
  let summaryFile: string | undefined;
  if (opts.outputDir) {
    samplesFile = path.join(opts.outputDir, `${plugin.name}-samples.jsonl`);
    summaryFile = path.join(opts.outputDir, `${plugin.name}-summary.json`);
    log = new AtomicJsonLines(samplesFile);
  }
  let records = 0;
  const started = Date.now();
  let result: EvalResult;
  try {
    result = await plugin.evaluate(
      {
        settings,
        ...(opts.model ? { model: opts.model } : {}),
        ...(opts.completions ? { completions: opts.completions } : {}),
        log: (record) => {
          records++;
          log?.write(record);
        },
        ...(opts.progress ? { progress: opts.progress } : {}),
      },
      options,
    );
  } catch (e) {
    log?.abort();
    throw e;
  }
  if (log) await log.commit();
  if (summaryFile) {
    const summary = {
      ...result,
      model: opts.model?.name ?? (opts.completions ? 'supplied samples' : null),
      options,
      settings,
      records,
      seconds: (Date.now() - started) / 1000,
      samplesFile,
    };
    await writeFileAtomic(summaryFile, `${JSON.stringify(summary, null, 2)}\n`);
  }
  return { result, records, ...(samplesFile ? { samplesFile } : {}), ...(summaryFile ? { summaryFile } : {}) };
}
