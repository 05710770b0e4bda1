import { ConfigError, YuanError, type EvalContext, type EvalResult } from '@yuan/core';
import { majorityVote } from '../metrics/majority.js';
import { mean } from '../metrics/mean.js';
import { collectCompletions } from '../run/completions.js';
import { badSummary, type BadLine } from '../yuan/files.js';
import { paperComparison } from '../yuan/paper.js';

/** Evaluation protocols: `default` (the common English way) or `yuan` (the YUAN 2.0 paper's prompts, files and scorers). */
export type Protocol = 'default' | 'yuan';

/** Checks `protocol` and resolves `lang` ('' = the protocol's default: zh under yuan, en otherwise). */
export function resolveProtocol(
  task: string,
  protocol: string,
  lang: string,
  langs: { yuan: string[]; default: string[] },
): { protocol: Protocol; lang: 'zh' | 'en' } {
  if (protocol !== 'default' && protocol !== 'yuan')
    throw new ConfigError(`${task}: protocol "${protocol}": expected yuan or default`);
  const allowed = langs[protocol];
  const chosen =
    lang === ''
      ? allowed.includes(protocol === 'yuan' ? 'zh' : 'en')
        ? protocol === 'yuan'
          ? 'zh'
          : 'en'
        : allowed[0]!
      : lang;
  if (!allowed.includes(chosen)) {
    throw new ConfigError(`${task}: lang "${lang}" under the ${protocol} protocol: expected ${allowed.join(' or ')}`);
  }
  return { protocol, lang: chosen as 'zh' | 'en' };
}

/** One sample's verdict: whether it is right, and the canonical answer a majority vote counts (null: no answer). */
export interface Verdict {
  correct: boolean;
  answer: string | null;
  extra?: Record<string, unknown>;
}

/** What a generative YUAN-protocol task supplies. */
export interface GenerativeTask<T extends { id: string }> {
  name: string;
  file: string;
  items: T[];
  bad: BadLine[];
  prompt(item: T): string;
  score(item: T, completion: string): Verdict;
  gold(item: T): unknown;
  maxNewTokens: number;
  details?: Record<string, unknown>;
  /** Paper note for the comparison table (which model size a run compares with is the reader's choice). */
  paperNote?: string;
}

/**
 * Generates (or takes supplied) completions for a YUAN-protocol task and scores them: `accuracy` of the first sample
 * (greedy by default), `mean_accuracy` over all samples, and `maj@k` (self-consistency, Wang et al.: the majority of
 * the first k samples' answers, ties to the answer seen first) for every k > 1 of `--k`. Skipped data lines are
 * logged and counted in the details, never fatal.
 */
export async function runGenerative<T extends { id: string }>(
  ctx: EvalContext,
  task: GenerativeTask<T>,
): Promise<EvalResult> {
  for (const b of task.bad) ctx.log({ question_id: String(b.index), skipped: b.reason });
  if (task.items.length === 0)
    throw new YuanError('input', `${task.file}: no usable record (${task.bad.length} skipped)`);
  const sets = await collectCompletions(ctx, task.items, (item) => ({
    prompt: task.prompt(item),
    maxNewTokens: task.maxNewTokens,
    stop: ['<eod>'],
  }));
  const ks = ctx.settings.k.filter((k) => k > 1);
  for (const k of ks) {
    const short = sets.find((s) => s.completions.length < k);
    if (short)
      throw new ConfigError(
        `maj@${k} needs at least ${k} completions per question; ${short.task.id} has ${short.completions.length} (raise --n)`,
      );
  }
  const first: number[] = [];
  const all: number[] = [];
  const maj = new Map<number, number[]>(ks.map((k) => [k, []]));
  for (const { task: item, completions } of sets) {
    const verdicts = completions.map((c) => task.score(item, c));
    verdicts.forEach((v, sample) => {
      all.push(v.correct ? 1 : 0);
      if (sample === 0) first.push(v.correct ? 1 : 0);
      ctx.log({
        question_id: item.id,
        sample,
        completion: completions[sample],
        extracted: v.answer,
        gold: task.gold(item),
        correct: v.correct,
        ...v.extra,
      });
    });
    for (const k of ks) {
      const vote = majorityVote(verdicts.slice(0, k).map((v) => v.answer));
      const correct = vote !== null && verdicts.slice(0, k).some((v) => v.answer === vote && v.correct);
      maj.get(k)!.push(correct ? 1 : 0);
      ctx.log({ question_id: item.id, vote_k: k, voted: vote, gold: task.gold(item), correct });
    }
  }
  const metrics: Record<string, number> = { accuracy: mean(first), mean_accuracy: mean(all) };
  for (const k of ks) metrics[`maj@${k}`] = mean(maj.get(k)!);
  const sc = ks.length ? `maj@${ks[ks.length - 1]}` : undefined;
  const paper = paperComparison(
    task.name,
    metrics,
    task.paperNote ?? 'paper: greedy (TOP_K=1); SC = majority vote',
    sc,
  );
  return {
    task: task.name,
    metrics,
    count: sets.length,
    details: {
      protocol: 'yuan',
      file: task.file,
      samples: all.length,
      ...task.details,
      ...badSummary(task.file, task.bad),
      ...(paper ? { paper } : {}),
    },
  };
}

/** Runs a default-protocol evaluation whose task ids are `PREFIX/i`, letting supplied samples use the plain index `i`. */
export function withIdPrefix(ctx: EvalContext, prefix: string): EvalContext {
  if (!ctx.completions) return ctx;
  const completions = new Map([...ctx.completions].map(([id, c]) => [id.includes('/') ? id : `${prefix}/${id}`, c]));
  return { ...ctx, completions };
}
