import { ConfigError, type EvalContext, type EvalResult, type EvaluatorPlugin } from '@yuan/core';
import { parseJsonLines, readDataFile } from '../data/files.js';
import { mean } from '../metrics/mean.js';
import { passAtK } from '../metrics/pass-at-k.js';
import { mapLimit } from '../run/pool.js';
import { collectCompletions } from '../run/completions.js';
import { Sandbox } from '../sandbox/sandbox.js';
import { completionCode, humanEvalProgram, type CompletionStyle, type HumanEvalProblem } from './humaneval-program.js';
import { checkOptions } from './options.js';

/** Options of `humaneval`. Defaults: the data set's gz file, 3 s per sample, 1024 MiB, isolation auto, raw completions. */
export interface HumanEvalOptions {
  file: string;
  timeoutMs: number;
  memoryMb: number;
  isolation: 'auto' | 'namespaces' | 'plain';
  completion: CompletionStyle;
  maxNewTokens: number;
}

const DEFAULTS: HumanEvalOptions = {
  file: 'humaneval/HumanEval.jsonl.gz',
  timeoutMs: 3000,
  memoryMb: 1024,
  isolation: 'auto',
  completion: 'raw',
  maxNewTokens: 512,
};

/** Stop sequences that end a function body in a completion model's output. */
const STOPS = ['\ndef ', '\nclass ', '\nif __name__', '\nprint(', '\n#', '\n```'];

/** Loads the HumanEval problems from the data folder. */
export function loadHumanEval(dataDir: string, file = DEFAULTS.file): HumanEvalProblem[] {
  return parseJsonLines(readDataFile(dataDir, file), file).map((r) => ({
    id: String(r.task_id),
    prompt: String(r.prompt),
    canonicalSolution: String(r.canonical_solution),
    test: String(r.test),
    entryPoint: String(r.entry_point),
  }));
}

function validate(options: Record<string, unknown>): HumanEvalOptions {
  const o = checkOptions('humaneval', DEFAULTS, options);
  if (!['raw', 'code-block'].includes(o.completion)) throw new ConfigError(`humaneval: completion "${o.completion}": expected raw or code-block`);
  return o;
}

async function evaluate(ctx: EvalContext, raw: HumanEvalOptions): Promise<EvalResult> {
  const options = validate(raw as unknown as Record<string, unknown>);
  const sandbox = await Sandbox.create({
    isolation: options.isolation,
    limits: { timeoutMs: options.timeoutMs, memoryBytes: options.memoryMb * 1024 * 1024 },
  });
  const problems = loadHumanEval(ctx.settings.dataDir, options.file);
  const sets = await collectCompletions(ctx, problems, (p) => ({ prompt: p.prompt, maxNewTokens: options.maxNewTokens, stop: STOPS }));
  for (const k of ctx.settings.k) {
    const short = sets.find((s) => s.completions.length < k);
    if (short) throw new ConfigError(`pass@${k} needs at least ${k} completions per task; ${short.task.id} has ${short.completions.length} (raise --n or lower --k)`);
  }
  const jobs = sets.flatMap((s) => s.completions.map((completion, sample) => ({ problem: s.task, completion, sample })));
  const passed = await mapLimit(jobs, ctx.settings.workers, async (job) => {
    const code = completionCode(job.completion, options.completion);
    const r = await sandbox.run(humanEvalProgram(job.problem, code));
    const ok = r.status === 'ok';
    ctx.log({
      task_id: job.problem.id,
      sample: job.sample,
      completion: job.completion,
      passed: ok,
      result: r.status,
      exit_code: r.exitCode,
      duration_ms: Math.round(r.durationMs),
      stderr_tail: r.stderr.slice(-400),
      output_truncated: r.truncated,
    });
    return ok;
  });
  const metrics: Record<string, number> = {};
  let at = 0;
  const perTask = sets.map((s) => {
    const c = passed.slice(at, at + s.completions.length).filter(Boolean).length;
    at += s.completions.length;
    return { n: s.completions.length, c };
  });
  for (const k of ctx.settings.k) metrics[`pass@${k}`] = mean(perTask.map(({ n, c }) => passAtK(n, c, k)));
  return {
    task: 'humaneval',
    metrics,
    count: sets.length,
    details: { samples: jobs.length, isolation: sandbox.isolation, timeoutMs: options.timeoutMs, memoryMb: options.memoryMb },
  };
}

/** HumanEval: functional correctness of Python completions, run against the tests in the sandbox; pass@k (k <= n). */
export const humanEvalEvaluator: EvaluatorPlugin<HumanEvalOptions> = {
  kind: 'evaluator',
  name: 'humaneval',
  description: 'HumanEval pass@k, completions executed against the tests in a sandbox',
  defaults: DEFAULTS,
  flags: {
    timeout: { option: 'timeoutMs', type: 'seconds', help: 'seconds per program' },
    'memory-mb': { option: 'memoryMb', type: 'int', help: 'address-space limit per program (MB)' },
    isolation: { option: 'isolation', type: 'string', help: 'auto|namespaces|plain' },
    completion: { option: 'completion', type: 'string', help: 'raw|code-block' },
  },
  validate,
  evaluate,
};
