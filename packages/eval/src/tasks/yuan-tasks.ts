import { YuanError, type EvalContext, type EvalResult, type EvaluatorPlugin } from '@yuan/core';
import { mean } from '../metrics/mean.js';
import { mapLimit } from '../run/pool.js';
import { badSummary, fromYuanText, loadSepFile } from '../yuan/files.js';
import { extractYuanCloze, mathClozeEqual, normalizeLatex } from '../yuan/math-compare.js';
import { extractYuanChoice, mathqaGold } from '../yuan/mathqa-score.js';
import { paperComparison } from '../yuan/paper.js';
import {
  loadTruthfulEn,
  loadTruthfulZh,
  scoreTruthfulZh,
  truthfulEnContext,
  truthfulZhPrompt,
} from '../yuan/truthfulqa-data.js';
import { agiEvalEvaluator } from './agieval.js';
import { checkOptions } from './options.js';
import { resolveProtocol, runGenerative, withIdPrefix } from './protocol.js';

/** Options of `mathqa` and `mathcloze`. Defaults: protocol default (AGIEval's jsonl), lang '' (zh, the only one), maxNewTokens 0 (= 1024 under yuan, 256 otherwise). */
export interface GaokaoMathOptions {
  protocol: string;
  lang: string;
  maxNewTokens: number;
}

const GAOKAO_DEFAULTS: GaokaoMathOptions = { protocol: 'default', lang: '', maxNewTokens: 0 };
const GAOKAO_LANGS = { yuan: ['zh'], default: ['zh'] };

/** The YUAN 2.0 Gaokao-Math-QA instruction (`tasks/AGIEval-Math/eval_for_mathqa.py`, YUAN2-SPEC §7). */
export const YUAN_MATHQA_INSTRUCTION = '给出如下问题的分析，并从问题后的选项中选择出正确答案。\n';

function gaokaoPlugin(
  name: 'mathqa' | 'mathcloze',
  description: string,
  yuan: (ctx: EvalContext, o: GaokaoMathOptions) => Promise<EvalResult>,
): EvaluatorPlugin<GaokaoMathOptions> {
  const validate = (options: Record<string, unknown>) => {
    const o = checkOptions(name, GAOKAO_DEFAULTS, options);
    resolveProtocol(name, o.protocol, o.lang, GAOKAO_LANGS);
    return o;
  };
  return {
    kind: 'evaluator',
    name,
    description,
    defaults: GAOKAO_DEFAULTS,
    flags: {
      protocol: {
        option: 'protocol',
        type: 'string',
        help: "default|yuan (the YUAN 2.0 paper's files, prompts and scorers)",
      },
      lang: { option: 'lang', type: 'string', help: 'zh|en' },
    },
    validate,
    async evaluate(ctx, raw) {
      const o = validate(raw as unknown as Record<string, unknown>);
      if (o.protocol === 'yuan') return yuan(ctx, o);
      const subset = name === 'mathqa' ? 'gaokao-mathqa' : 'gaokao-mathcloze';
      const r = await agiEvalEvaluator.evaluate(withIdPrefix(ctx, subset), {
        subsets: subset,
        method: 'auto',
        maxNewTokens: o.maxNewTokens || 256,
      });
      return {
        ...r,
        task: name,
        metrics: { accuracy: r.metrics.accuracy! },
        details: { protocol: 'default', ...r.details },
      };
    },
  };
}

/**
 * Gaokao-Math-QA (351 questions). `protocol: 'yuan'`: yuan-eval/mathqa.txt, YUAN's instruction + question + `\n<sep>`,
 * letters extracted by `extractYuanChoice` ("故选X", ...) and compared with the gold `答案：X。`; accuracy and maj@k.
 * `default`: AGIEval's gaokao-mathqa through the `agieval` evaluator (log-likelihood or extraction).
 */
export const mathqaEvaluator = gaokaoPlugin(
  'mathqa',
  'Gaokao-Math-QA accuracy (--protocol yuan: YUAN 2.0 file, prompt and letter extraction; maj@k)',
  async (ctx, o) => {
    const file = 'mathqa.txt';
    const { items, bad } = loadSepFile(ctx.settings.dataDir, file);
    const golds = new Map(items.map((r) => [r.id, mathqaGold(r.answer)]));
    const usable = items.filter((r) => golds.get(r.id)!.length > 0);
    const noGold = items
      .filter((r) => golds.get(r.id)!.length === 0)
      .map((r) => ({ index: Number(r.id), reason: `no answer letter in "${r.answer}"` }));
    return runGenerative(ctx, {
      name: 'mathqa',
      file,
      items: usable,
      bad: [...bad, ...noGold].sort((a, b) => a.index - b.index),
      prompt: (r) => `${YUAN_MATHQA_INSTRUCTION}${fromYuanText(r.question)}\n<sep>`,
      score: (r, c) => {
        const letters = extractYuanChoice(c, r.question);
        const answer = letters.length ? letters.join('') : null;
        return { correct: answer !== null && answer === golds.get(r.id)!.join(''), answer };
      },
      gold: (r) => golds.get(r.id)!.join(''),
      maxNewTokens: o.maxNewTokens || 1024,
    });
  },
);

/**
 * Gaokao-Math-Cloze (118 questions). `protocol: 'yuan'`: yuan-eval/mathcloze.txt, prompt `question<sep>` (no
 * instruction, as `eval_for_mathcloze.py`), the answer read by `extractYuanCloze` and compared with the `;`-joined gold
 * by `mathClozeEqual` (mathematically, not as strings); maj@k votes over the normalised answer text.
 * `default`: AGIEval's gaokao-mathcloze through the `agieval` evaluator.
 */
export const mathclozeEvaluator = gaokaoPlugin(
  'mathcloze',
  'Gaokao-Math-Cloze accuracy (--protocol yuan: YUAN 2.0 file and prompt, answers compared mathematically; maj@k)',
  async (ctx, o) => {
    const file = 'mathcloze.txt';
    const { items, bad } = loadSepFile(ctx.settings.dataDir, file);
    return runGenerative(ctx, {
      name: 'mathcloze',
      file,
      items,
      bad,
      prompt: (r) => `${fromYuanText(r.question)}<sep>`,
      score: (r, c) => {
        const said = extractYuanCloze(c);
        return {
          correct: said !== '' && mathClozeEqual(said, r.answer),
          answer: said === '' ? null : said.split(/[;；]/).map(normalizeLatex).join(';'),
        };
      },
      gold: (r) => r.answer,
      maxNewTokens: o.maxNewTokens || 1024,
    });
  },
);

/** Options of `truthfulqa`. Defaults: protocol default, lang '' (en under default, zh under yuan), shuffleSeed 1234 (-1: the file's order), maxNewTokens 0 (= 1024). */
export interface TruthfulQaOptions {
  protocol: string;
  lang: string;
  /** Seed of the per-question option shuffle of the Chinese file; -1 keeps YUAN's order, where the answer is always A. */
  shuffleSeed: number;
  maxNewTokens: number;
}

const TQA_DEFAULTS: TruthfulQaOptions = { protocol: 'default', lang: '', shuffleSeed: 1234, maxNewTokens: 0 };
const TQA_LANGS = { yuan: ['zh', 'en'], default: ['en', 'zh'] };

function validateTqa(options: Record<string, unknown>): TruthfulQaOptions {
  const o = checkOptions('truthfulqa', TQA_DEFAULTS, options);
  resolveProtocol('truthfulqa', o.protocol, o.lang, TQA_LANGS);
  if (!Number.isInteger(o.shuffleSeed) || o.shuffleSeed < -1)
    throw new YuanError(
      'config',
      `truthfulqa: shuffleSeed ${o.shuffleSeed}: expected an integer >= 0, or -1 for no shuffle`,
    );
  return o;
}

/** log(sum(exp(xs))) without overflow. */
function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m === -Infinity ? -Infinity : m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

async function truthfulEn(ctx: EvalContext): Promise<EvalResult> {
  if (ctx.completions)
    throw new YuanError(
      'usage',
      'truthfulqa --lang en scores options by log-likelihood: it needs a local --model or an --endpoint returning logprobs, not --samples',
    );
  const model = ctx.model;
  if (!model?.logLikelihood) {
    throw new YuanError(
      'usage',
      `truthfulqa --lang en needs option log-likelihoods, which ${model?.name ?? 'this model'} does not give (an endpoint must return logprobs: --logprobs)`,
    );
  }
  const file = 'TruthfulQA_EN.json';
  const { items: all, bad } = loadTruthfulEn(ctx.settings.dataDir);
  for (const b of bad) ctx.log({ question_id: String(b.index), skipped: b.reason });
  const items = ctx.settings.limit === undefined ? all : all.slice(0, ctx.settings.limit);
  let done = 0;
  const scoring = mapLimit(items, ctx.settings.workers, async (q) => {
    const context = truthfulEnContext(q.question);
    const ll = new Map<string, number>();
    for (const t of [...q.mc1, ...q.mc2])
      if (!ll.has(t.text)) ll.set(t.text, await model.logLikelihood!(context, ` ${t.text}`));
    const mc1Scores = q.mc1.map((t) => ll.get(t.text)!);
    const best = mc1Scores.indexOf(Math.max(...mc1Scores));
    const mc1 = q.mc1[best]!.label === 1 ? 1 : 0;
    const trueLl = q.mc2.filter((t) => t.label === 1).map((t) => ll.get(t.text)!);
    const mc2 = Math.exp(logSumExp(trueLl) - logSumExp(q.mc2.map((t) => ll.get(t.text)!)));
    ctx.log({ question_id: q.id, mc1_scores: mc1Scores, mc1_pick: q.mc1[best]!.text, mc1_correct: mc1 === 1, mc2 });
    ctx.progress?.(++done, items.length);
    return { mc1, mc2 };
  });
  const scored = await scoring.catch((e: Error) => {
    throw new YuanError(
      'usage',
      `truthfulqa --lang en needs option log-likelihoods, and ${model.name} gave none: ${e.message.replace(/\s+/g, ' ')}`,
    );
  });
  return {
    task: 'truthfulqa',
    metrics: { mc1: mean(scored.map((s) => s.mc1)), mc2: mean(scored.map((s) => s.mc2)) },
    count: scored.length,
    details: {
      lang: 'en',
      file,
      method:
        'option log-likelihood after "Q: {question}\\nA:" (zero-shot); MC1: the top option is the true one; MC2: probability mass of the true options',
      ...badSummary(file, bad),
    },
  };
}

/**
 * TruthfulQA. `lang: 'zh'` (the yuan protocol's default): TruthfulQA_CN.json with YUAN's prompt (options `A. …B. …`
 * run together, then the instruction and `<sep>`), generation, and YUAN's exact-match scoring `正确答案是X选项。`
 * (`mc1`). The file's correct answer is always `ans1`, so the options are shuffled per question with
 * `shuffleSeed` (+ the record index); `shuffleSeed: -1` reproduces the paper's unshuffled run (the answer always A),
 * which measures position bias. `lang: 'en'`: TruthfulQA_EN.json, MC1 and MC2 by option log-likelihood (local models
 * and endpoints that return logprobs), as lm-eval's truthfulqa_mc1/mc2.
 */
export const truthfulQaEvaluator: EvaluatorPlugin<TruthfulQaOptions> = {
  kind: 'evaluator',
  name: 'truthfulqa',
  description:
    'TruthfulQA MC1 (zh: YUAN prompt and exact match, options shuffled with a fixed seed) and MC1/MC2 by log-likelihood (en)',
  defaults: TQA_DEFAULTS,
  flags: {
    protocol: {
      option: 'protocol',
      type: 'string',
      help: "default|yuan (the YUAN 2.0 paper's files, prompts and scorers)",
    },
    lang: { option: 'lang', type: 'string', help: 'zh|en' },
    'shuffle-seed': {
      option: 'shuffleSeed',
      type: 'integer',
      help: "seed of the option shuffle (-1: the file's order)",
    },
  },
  validate: validateTqa,
  async evaluate(ctx, raw) {
    const o = validateTqa(raw as unknown as Record<string, unknown>);
    const { protocol, lang } = resolveProtocol('truthfulqa', o.protocol, o.lang, TQA_LANGS);
    if (lang === 'en') {
      const r = await truthfulEn(ctx);
      return { ...r, details: { protocol, ...r.details } };
    }
    const file = 'TruthfulQA_CN.json';
    const seed = o.shuffleSeed === -1 ? null : o.shuffleSeed;
    const { items, bad } = loadTruthfulZh(ctx.settings.dataDir, seed);
    const r = await runGenerative(ctx, {
      name: 'truthfulqa',
      file,
      items,
      bad,
      prompt: truthfulZhPrompt,
      score: (q, c) => {
        const v = scoreTruthfulZh(c, q.gold);
        return { correct: v.correct, answer: v.said };
      },
      gold: (q) => q.gold,
      maxNewTokens: o.maxNewTokens || 1024,
      details: {
        lang,
        shuffle:
          seed === null
            ? 'none: the file order, the answer is always A (as the paper ran it)'
            : `options shuffled per question, seed ${seed} + record index`,
      },
      paperNote: 'the paper did not shuffle (the answer is always A)',
    });
    const metrics = { mc1: r.metrics.accuracy!, ...r.metrics };
    const paper = paperComparison('truthfulqa', metrics, 'the paper did not shuffle (the answer is always A)');
    return { ...r, metrics, details: { ...r.details, protocol, ...(paper ? { paper } : {}) } };
  },
};
