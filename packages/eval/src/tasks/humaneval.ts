import { ConfigError, YuanError, type EvalContext, type EvalResult, type EvaluatorPlugin } from '@yuan/core';
import { parseJsonLines, readDataFile } from '../data/files.js';
import { mean } from '../metrics/mean.js';
import { passAtK } from '../metrics/pass-at-k.js';
import { mapLimit } from '../run/pool.js';
import { collectCompletions } from '../run/completions.js';
import { Sandbox } from '../sandbox/sandbox.js';
import {
  completionCode,
  HUMANEVAL_MODULE,
  humanEvalProgram,
  humanEvalVerdict,
  type CompletionStyle,
  type HumanEvalProblem,
} from './humaneval-program.js';
import { yuanCheckProgram, yuanHumanEvalCode } from '../yuan/humaneval-yuan.js';
import { YUAN_DIR } from '../yuan/files.js';
import { paperComparison } from '../yuan/paper.js';
import { parseGeneratedTests, testGenerationPrompt } from '../yuan/testgen.js';
import { checkOptions } from './options.js';
import { resolveProtocol, withIdPrefix } from './protocol.js';

/**
 * Options of `humaneval`. Defaults: the data set's gz file, 3 s per sample, 1024 MiB, isolation auto, raw completions,
 * protocol default, no selection; under `select: 'tests'` 1 test generation per task of at most 256 tokens.
 */
export interface HumanEvalOptions {
  file: string;
  timeoutMs: number;
  memoryMb: number;
  isolation: 'auto' | 'namespaces' | 'plain';
  completion: CompletionStyle;
  maxNewTokens: number;
  /** `yuan`: the Chinese text prompts (yuan-eval/HumanEval-textprompts.jsonl), YUAN's post-processing and check program. */
  protocol: string;
  /** `tests`: self-consistency by model-generated unit tests (PAPER §4.1, Appendix B); `none`: plain pass@k. */
  select: string;
  /** Test generations sampled per task under `select: 'tests'` (their asserts are pooled). */
  testSamples: number;
  testMaxNewTokens: number;
}

const DEFAULTS: HumanEvalOptions = {
  file: 'humaneval/HumanEval.jsonl.gz',
  timeoutMs: 3000,
  memoryMb: 1024,
  isolation: 'auto',
  completion: 'raw',
  maxNewTokens: 512,
  protocol: 'default',
  select: 'none',
  testSamples: 1,
  testMaxNewTokens: 256,
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
  if (!['raw', 'code-block'].includes(o.completion))
    throw new ConfigError(`humaneval: completion "${o.completion}": expected raw or code-block`);
  resolveProtocol('humaneval', o.protocol, '', { yuan: ['zh'], default: ['en'] });
  if (!['none', 'tests'].includes(o.select))
    throw new ConfigError(`humaneval: select "${o.select}": expected none or tests`);
  if (!Number.isInteger(o.testSamples) || o.testSamples < 1)
    throw new ConfigError(`humaneval: testSamples ${o.testSamples}: expected a positive integer`);
  return o;
}

/** Replaces each problem's prompt by YUAN's Chinese text prompt (yuan-eval/HumanEval-textprompts.jsonl, matched by task_id). */
export function withYuanPrompts(dataDir: string, problems: HumanEvalProblem[]): HumanEvalProblem[] {
  const file = `${YUAN_DIR}/HumanEval-textprompts.jsonl`;
  const prompts = new Map(
    parseJsonLines(readDataFile(dataDir, file), file).map((r) => [String(r.task_id), String(r.prompt)]),
  );
  return problems.map((p) => {
    const prompt = prompts.get(p.id);
    if (prompt === undefined) throw new YuanError('input', `${file}: no prompt for ${p.id}`);
    return { ...p, prompt };
  });
}

async function evaluate(rawCtx: EvalContext, raw: HumanEvalOptions): Promise<EvalResult> {
  const options = validate(raw as unknown as Record<string, unknown>);
  const ctx = withIdPrefix(rawCtx, 'HumanEval');
  if (options.select === 'tests' && !ctx.model) {
    throw new YuanError(
      'usage',
      'humaneval select tests: the model writes the unit tests, so it needs --model or --endpoint (not --samples)',
    );
  }
  const sandbox = await Sandbox.create({
    isolation: options.isolation,
    limits: { timeoutMs: options.timeoutMs, memoryBytes: options.memoryMb * 1024 * 1024 },
  });
  sandbox.serve(ctx.settings.workers);
  try {
    return await scoreHumanEval(ctx, options, sandbox);
  } finally {
    await sandbox.close();
  }
}

async function scoreHumanEval(ctx: EvalContext, options: HumanEvalOptions, sandbox: Sandbox): Promise<EvalResult> {
  const yuan = options.protocol === 'yuan';
  const english = loadHumanEval(ctx.settings.dataDir, options.file);
  const problems = yuan ? withYuanPrompts(ctx.settings.dataDir, english) : english;
  // YUAN's model answers after the prompt's opened ```python block; the closing fence ends the code
  const sets = await collectCompletions(ctx, problems, (p) => ({
    prompt: p.prompt,
    maxNewTokens: options.maxNewTokens,
    stop: yuan ? ['\n```', '<eod>'] : STOPS,
  }));
  const codeOf = (p: HumanEvalProblem, completion: string) =>
    yuan ? yuanHumanEvalCode(p.prompt, completion) : completionCode(completion, options.completion);
  const programOf = (p: HumanEvalProblem, code: string) =>
    yuan ? yuanCheckProgram(code, p.test, p.entryPoint) : humanEvalProgram(p, code);
  for (const k of ctx.settings.k) {
    const short = sets.find((s) => s.completions.length < k);
    if (short)
      throw new ConfigError(
        `pass@${k} needs at least ${k} completions per task; ${short.task.id} has ${short.completions.length} (raise --n or lower --k)`,
      );
  }
  const jobs = sets.flatMap((s) =>
    s.completions.map((completion, sample) => ({ problem: s.task, completion, sample })),
  );
  const passed = await mapLimit(jobs, ctx.settings.workers, async (job) => {
    const code = codeOf(job.problem, job.completion);
    const r = await sandbox.run(programOf(job.problem, code), { module: HUMANEVAL_MODULE });
    const verdict = humanEvalVerdict(r);
    const ok = verdict === 'passed';
    ctx.log({
      task_id: job.problem.id,
      sample: job.sample,
      completion: job.completion,
      passed: ok,
      result: verdict,
      exit_code: r.exitCode,
      duration_ms: Math.round(r.durationMs),
      stderr_tail: r.stderr.slice(-400),
      output_truncated: r.truncated,
    });
    return ok;
  });
  const metrics: Record<string, number> = {};
  let at = 0;
  const offsets = sets.map((s) => {
    const o = at;
    at += s.completions.length;
    return o;
  });
  at = 0;
  const perTask = sets.map((s) => {
    const c = passed.slice(at, at + s.completions.length).filter(Boolean).length;
    at += s.completions.length;
    return { n: s.completions.length, c };
  });
  for (const k of ctx.settings.k) metrics[`pass@${k}`] = mean(perTask.map(({ n, c }) => passAtK(n, c, k)));
  if (options.select === 'tests') {
    metrics['pass@1_first'] = mean(sets.map((_, i) => (passed[offsets[i]!] ? 1 : 0)));
    const selected = await selectByGeneratedTests(ctx, options, sandbox, sets, (p, c) => codeOf(p, c));
    metrics['pass@1_selected'] = mean(selected.map((s, i) => (passed[offsets[i]! + s] ? 1 : 0)));
  }
  const paper = yuan
    ? paperComparison(
        'humaneval',
        metrics,
        'paper: greedy pass@1; SC = the candidate passing most model-written tests',
        options.select === 'tests' ? 'pass@1_selected' : undefined,
      )
    : undefined;
  return {
    task: 'humaneval',
    metrics,
    count: sets.length,
    details: {
      protocol: options.protocol,
      ...(yuan
        ? {
            prompts: 'yuan-eval/HumanEval-textprompts.jsonl (Chinese)',
            check: 'YUAN post-processing; check program without the prompt',
          }
        : {}),
      ...(options.select === 'tests'
        ? {
            select: `generated tests (${options.testSamples} generation(s) per task); pass@1_selected is the pass rate of the chosen candidate`,
          }
        : {}),
      samples: jobs.length,
      isolation: sandbox.isolation,
      isolation_note: sandbox.note,
      timeoutMs: options.timeoutMs,
      memoryMb: options.memoryMb,
      ...(paper ? { paper } : {}),
    },
  };
}

/**
 * Self-consistency by generated tests (PAPER §4.1, Appendix B): for each task the model writes unit tests from a
 * few-shot prompt (`testSamples` generations, asserts pooled); every candidate runs against them in the sandbox, and
 * the candidate passing most is chosen (ties: the earliest sample). Returns the chosen sample index per task. A test
 * passes by the same rule as a HumanEval program: the candidate's code ran to its end (as a module, not `__main__`) and
 * then the assert ran to its end without an exception, proven by the sandbox's per-check token, never by printed output.
 */
async function selectByGeneratedTests(
  ctx: EvalContext,
  options: HumanEvalOptions,
  sandbox: Sandbox,
  sets: { task: HumanEvalProblem; completions: string[] }[],
  codeOf: (p: HumanEvalProblem, c: string) => string,
): Promise<number[]> {
  const model = ctx.model!;
  return mapLimit(sets, ctx.settings.workers, async ({ task, completions }) => {
    const generations = await model.generate({
      prompt: testGenerationPrompt(task.prompt),
      maxNewTokens: options.testMaxNewTokens,
      stop: ['\n```', '<eod>'],
      n: options.testSamples,
      temperature: options.testSamples > 1 ? Math.max(ctx.settings.temperature, 0.8) : 0,
      ...(ctx.settings.seed !== undefined ? { seed: ctx.settings.seed } : {}),
    });
    const tests = parseGeneratedTests(generations.join('\n'));
    const counts: number[] = [];
    for (const completion of completions) {
      const r = tests.length
        ? await sandbox.run(codeOf(task, completion), { module: HUMANEVAL_MODULE, checks: tests })
        : undefined;
      counts.push(r ? r.checks.filter(Boolean).length : 0);
    }
    const chosen = counts.indexOf(Math.max(...counts));
    ctx.log({ task_id: task.id, generated_tests: tests, tests_passed: counts, selected: chosen });
    return chosen;
  });
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
    protocol: { option: 'protocol', type: 'string', help: 'default|yuan (Chinese text prompts, YUAN post-processing)' },
    select: { option: 'select', type: 'string', help: 'none|tests (self-consistency by model-written unit tests)' },
    'test-samples': { option: 'testSamples', type: 'int', help: 'unit-test generations per task for --select tests' },
  },
  validate,
  evaluate,
};
