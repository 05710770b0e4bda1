import { ConfigError, YuanError, type EvalContext, type EvalResult, type EvaluatorPlugin } from '@yuan/core';
import { extractNumericAnswer, sameNumber } from '../extract/number.js';
import { majorityAtK } from '../metrics/majority.js';
import { mean } from '../metrics/mean.js';
import { collectCompletions } from '../run/completions.js';
import { checkOptions } from './options.js';

/** One math word problem with its numeric gold answer (normalised). */
export interface MathProblem {
  id: string;
  question: string;
  gold: string;
  /** The reference solution, when the data set has one. */
  solution?: string;
}

/** Prompt styles: `qa` (Question/Answer, step by step, for base models) or `yuan` (the YUAN 2.0 instruction + `<sep>`). */
export type MathPromptStyle = 'qa' | 'yuan';

/** Options of the math word-problem evaluators. Defaults: prompt qa, 512 new tokens. */
export interface MathOptions {
  prompt: MathPromptStyle;
  maxNewTokens: number;
}

const DEFAULTS: MathOptions = { prompt: 'qa', maxNewTokens: 512 };

/** The prompt for a question in a style. */
export function mathPrompt(question: string, style: MathPromptStyle): string {
  return style === 'yuan'
    ? `详细分析并求解以下数学问题。\n${question}<sep>`
    : `Question: ${question}\nAnswer: Let's think step by step.`;
}

function validate(name: string) {
  return (options: Record<string, unknown>): MathOptions => {
    const o = checkOptions(name, DEFAULTS, options);
    if (!['qa', 'yuan'].includes(o.prompt)) throw new ConfigError(`${name}: prompt "${o.prompt}": expected qa or yuan`);
    return o;
  };
}

/**
 * Scores completions of math word problems: the answer of each sample is extracted; `accuracy` is the first sample's
 * (greedy) accuracy, `mean_accuracy` the accuracy over all samples, and `maj@k` the accuracy of the majority vote over
 * the first k samples (self-consistency, take-first-k) for every requested k > 1.
 */
async function scoreMath(
  name: string,
  ctx: EvalContext,
  options: MathOptions,
  problems: MathProblem[],
): Promise<EvalResult> {
  const sets = await collectCompletions(ctx, problems, (p) => ({
    prompt: mathPrompt(p.question, options.prompt),
    maxNewTokens: options.maxNewTokens,
    stop: options.prompt === 'qa' ? ['\nQuestion:', '\n\n\n'] : ['<eod>'],
  }));
  const ks = ctx.settings.k.filter((k) => k > 1);
  for (const k of ks) {
    const short = sets.find((s) => s.completions.length < k);
    if (short)
      throw new ConfigError(
        `maj@${k} needs at least ${k} completions per question; ${short.task.id} has ${short.completions.length}`,
      );
  }
  const first: number[] = [];
  const all: number[] = [];
  const maj = new Map<number, number[]>(ks.map((k) => [k, []]));
  for (const { task, completions } of sets) {
    const answers = completions.map(extractNumericAnswer);
    answers.forEach((answer, sample) => {
      const correct = sameNumber(answer, task.gold);
      all.push(correct ? 1 : 0);
      if (sample === 0) first.push(correct ? 1 : 0);
      ctx.log({
        question_id: task.id,
        sample,
        completion: completions[sample],
        extracted: answer,
        gold: task.gold,
        correct,
      });
    });
    for (const k of ks) {
      const vote = majorityAtK(answers, k);
      const correct = sameNumber(vote, task.gold);
      maj.get(k)!.push(correct ? 1 : 0);
      ctx.log({ question_id: task.id, vote_k: k, voted: vote, gold: task.gold, correct });
    }
  }
  const metrics: Record<string, number> = { accuracy: mean(first), mean_accuracy: mean(all) };
  for (const k of ks) metrics[`maj@${k}`] = mean(maj.get(k)!);
  return { task: name, metrics, count: sets.length, details: { prompt: options.prompt, samples: all.length } };
}

/** Builds a math word-problem evaluator plugin over a problem loader. */
export function mathEvaluator(
  name: string,
  description: string,
  load: (dataDir: string) => MathProblem[],
): EvaluatorPlugin<MathOptions> {
  return {
    kind: 'evaluator',
    name,
    description,
    defaults: DEFAULTS,
    flags: { 'prompt-style': { option: 'prompt', type: 'string', help: 'qa|yuan' } },
    validate: validate(name),
    evaluate: (ctx, options) =>
      scoreMath(name, ctx, validate(name)(options as unknown as Record<string, unknown>), load(ctx.settings.dataDir)),
  };
}

/** A problem whose gold answer could not be read is a data error naming it. */
export function requireGold(gold: string | null, where: string): string {
  if (gold === null) throw new YuanError('input', `${where}: no numeric gold answer`);
  return gold;
}
