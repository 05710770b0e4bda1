import { ConfigError, YuanError, type EvalContext, type EvalResult, type EvaluatorPlugin } from '@yuan/core';
import { parseJsonLines, readDataFile } from '../data/files.js';
import { extractChoice } from '../extract/choice.js';
import { clozeMatches, extractCloze } from '../extract/cloze.js';
import { mean } from '../metrics/mean.js';
import { collectCompletions } from '../run/completions.js';
import { mapLimit } from '../run/pool.js';
import { checkOptions } from './options.js';

/** The AGIEval subsets read from `agieval/NAME.jsonl` (Chinese gaokao-*, English sat-math, aqua-rat, lsat-ar, math). */
export const AGIEVAL_SUBSETS = [
  'gaokao-chinese',
  'gaokao-english',
  'gaokao-geography',
  'gaokao-history',
  'gaokao-biology',
  'gaokao-chemistry',
  'gaokao-physics',
  'gaokao-mathqa',
  'gaokao-mathcloze',
  'sat-math',
  'aqua-rat',
  'lsat-ar',
  'math',
] as const;

/** One AGIEval question: multiple choice (`options`, gold letters) or cloze (gold answer text). */
export interface AgiQuestion {
  id: string;
  subset: string;
  prompt: string;
  options: string[] | null;
  /** Gold letters for multiple choice (several for a few gaokao questions), else []. */
  labels: string[];
  /** Gold answer for cloze questions. */
  answer: string | null;
}

/** Options of `agieval`. Defaults: every subset, method auto (log-likelihood when the model has it), 256 new tokens. */
export interface AgiOptions {
  subsets: string;
  method: 'auto' | 'loglik' | 'extract';
  maxNewTokens: number;
}

const DEFAULTS: AgiOptions = { subsets: AGIEVAL_SUBSETS.join(','), method: 'auto', maxNewTokens: 256 };

function buildPrompt(row: Record<string, unknown>, zh: boolean): string {
  const passage = typeof row.passage === 'string' && row.passage.trim() ? `${row.passage.trim()}\n` : '';
  const options = Array.isArray(row.options) ? `\n${(row.options as string[]).join('\n')}` : '';
  return `${passage}${String(row.question).trim()}${options}\n${zh ? '答案：' : 'Answer:'}`;
}

/** Loads one subset; ids are `SUBSET/INDEX`. */
export function loadAgiEval(dataDir: string, subset: string): AgiQuestion[] {
  const file = `agieval/${subset}.jsonl`;
  const zh = subset.startsWith('gaokao');
  return parseJsonLines(readDataFile(dataDir, file), file).map((row, i) => {
    const options = Array.isArray(row.options) && row.options.length > 0 ? (row.options as string[]) : null;
    // a label is a letter, a list of letters or a string of several letters ("AD", "A B D")
    const raw = Array.isArray(row.label)
      ? (row.label as unknown[]).map(String)
      : String(row.label ?? '').split(/[\s,]*/);
    const labels = options ? [...new Set(raw.map((l) => l.trim()).filter((l) => l !== ''))].sort() : [];
    if (options && (labels.length === 0 || labels.some((l) => !/^[A-J]$/.test(l))))
      throw new YuanError('input', `${file} row ${i}: label ${JSON.stringify(row.label)} is not an option letter`);
    if (!options && (row.answer === null || row.answer === undefined))
      throw new YuanError('input', `${file} row ${i}: neither options nor an answer`);
    return {
      id: `${subset}/${i}`,
      subset,
      prompt: buildPrompt(row, zh),
      options,
      labels,
      answer: options ? null : String(row.answer),
    };
  });
}

function validate(options: Record<string, unknown>): AgiOptions {
  const o = checkOptions('agieval', DEFAULTS, options);
  if (!['auto', 'loglik', 'extract'].includes(o.method))
    throw new ConfigError(`agieval: method "${o.method}": expected auto, loglik or extract`);
  for (const s of o.subsets.split(',')) {
    if (!(AGIEVAL_SUBSETS as readonly string[]).includes(s))
      throw new ConfigError(`agieval: unknown subset "${s}" (known: ${AGIEVAL_SUBSETS.join(', ')})`);
  }
  return o;
}

const LETTERS = 'ABCDEFGHIJ';

async function evaluate(ctx: EvalContext, raw: AgiOptions): Promise<EvalResult> {
  const options = validate(raw as unknown as Record<string, unknown>);
  const canLoglik = !ctx.completions && typeof ctx.model?.logLikelihood === 'function';
  if (options.method === 'loglik' && !canLoglik) {
    throw new ConfigError(
      'agieval: method loglik needs a model with log-likelihoods (a local --model), not an endpoint or --samples',
    );
  }
  const useLoglik = options.method === 'loglik' || (options.method === 'auto' && canLoglik);
  const subsets = options.subsets.split(',');
  // --limit applies per subset
  const questions = subsets.flatMap((s) => {
    const all = loadAgiEval(ctx.settings.dataDir, s);
    return ctx.settings.limit === undefined ? all : all.slice(0, ctx.settings.limit);
  });
  const bySubset = new Map<string, number[]>();
  const record = (q: AgiQuestion, correct: boolean) => {
    if (!bySubset.has(q.subset)) bySubset.set(q.subset, []);
    bySubset.get(q.subset)!.push(correct ? 1 : 0);
  };
  const mc = questions.filter((q) => q.options);
  const cloze = questions.filter((q) => !q.options);
  if (useLoglik) {
    const model = ctx.model!;
    await mapLimit(mc, ctx.settings.workers, async (q) => {
      const scores: number[] = [];
      for (const option of q.options!) scores.push(await model.logLikelihood!(q.prompt, ` ${option}`));
      const best = scores.indexOf(Math.max(...scores));
      const predicted = [LETTERS[best]!];
      const correct = predicted.join() === q.labels.join();
      ctx.log({ question_id: q.id, method: 'loglik', scores, predicted, gold: q.labels, correct });
      record(q, correct);
    });
  }
  const generative = useLoglik ? cloze : questions;
  if (generative.length > 0) {
    const ctxOne = { ...ctx, settings: { ...ctx.settings, limit: undefined, n: ctx.completions ? ctx.settings.n : 1 } };
    const sets = await collectCompletions(ctxOne, generative, (q) => ({
      prompt: q.prompt,
      maxNewTokens: options.maxNewTokens,
      stop: ['\n\n\n'],
    }));
    for (const { task: q, completions } of sets) {
      const completion = completions[0]!;
      if (q.options) {
        const predicted = extractChoice(completion, LETTERS.slice(0, q.options.length));
        const correct = predicted.join() === q.labels.join();
        ctx.log({ question_id: q.id, method: 'extract', completion, predicted, gold: q.labels, correct });
        record(q, correct);
      } else {
        const predicted = extractCloze(completion);
        const correct = clozeMatches(predicted, q.answer!);
        ctx.log({ question_id: q.id, method: 'cloze', completion, predicted, gold: q.answer, correct });
        record(q, correct);
      }
    }
  }
  const metrics: Record<string, number> = {};
  const all: number[] = [];
  for (const s of subsets) {
    const xs = bySubset.get(s);
    if (!xs) continue;
    metrics[`${s}/accuracy`] = mean(xs);
    all.push(...xs);
  }
  metrics.accuracy = mean(all);
  metrics.subset_mean = mean([...bySubset.values()].map(mean));
  return {
    task: 'agieval',
    metrics,
    count: all.length,
    details: { method: useLoglik ? 'loglik (choices), generation (cloze)' : 'generation + extraction', subsets },
  };
}

/** AGIEval: multiple choice by option log-likelihood (local models) or letter extraction (endpoints), and cloze. */
export const agiEvalEvaluator: EvaluatorPlugin<AgiOptions> = {
  kind: 'evaluator',
  name: 'agieval',
  description: 'AGIEval bilingual subsets: multiple choice and cloze accuracy',
  defaults: DEFAULTS,
  flags: {
    subsets: { option: 'subsets', type: 'string', help: 'comma-separated subset names' },
    method: { option: 'method', type: 'string', help: 'auto|loglik|extract' },
  },
  validate,
  evaluate,
};
