import { ConfigError, YuanError, type EvaluatorPlugin } from '@yuan/core';
import { parseJsonLines, readDataFile } from '../data/files.js';
import { gsm8kGold, normalizeNumber } from '../extract/number.js';
import { fromYuanText, loadSepFile } from '../yuan/files.js';
import { scoreYuanGsm8k } from '../yuan/gsm8k-score.js';
import { mathEvaluator, requireGold, type MathOptions, type MathProblem } from './math-word.js';
import { checkOptions } from './options.js';
import { resolveProtocol, runGenerative } from './protocol.js';

/** Loads GSM8K's test split; ids are 0-based line indexes. */
export function loadGsm8k(dataDir: string, file = 'gsm8k/test.jsonl'): MathProblem[] {
  return parseJsonLines(readDataFile(dataDir, file), file).map((r, i) => ({
    id: String(i),
    question: String(r.question),
    solution: String(r.answer),
    gold: requireGold(gsm8kGold(String(r.answer)), `${file} row ${i}`),
  }));
}

/** Loads SVAMP; ids are its `ID` fields, the question is Body + Question. */
export function loadSvamp(dataDir: string, file = 'svamp/SVAMP.json'): MathProblem[] {
  let rows: unknown;
  try {
    rows = JSON.parse(readDataFile(dataDir, file));
  } catch (e) {
    if (e instanceof YuanError) throw e;
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(rows)) throw new YuanError('input', `${file}: expected a JSON array of problems`);
  return rows.map((r: Record<string, unknown>, i) => ({
    id: String(r.ID ?? i),
    question: `${String(r.Body).trim()} ${String(r.Question).trim()}`,
    gold: requireGold(normalizeNumber(String(r.Answer)), `${file} item ${i}`),
  }));
}

const gsm8kDefault = mathEvaluator('gsm8k', 'GSM8K accuracy and maj@k self-consistency', (d) => loadGsm8k(d));

/**
 * Options of `gsm8k`. Defaults: protocol default (gsm8k/test.jsonl, `prompt` qa), lang '' (the protocol's: zh under
 * yuan), maxNewTokens 0 = the protocol's (512; 1024 under yuan, as `examples/eval_gsm8k_*.sh`); `--max-new-tokens` wins.
 */
export interface Gsm8kOptions extends MathOptions {
  protocol: string;
  lang: string;
}

const GSM8K_DEFAULTS: Gsm8kOptions = { protocol: 'default', lang: '', prompt: 'qa', maxNewTokens: 0 };

/** The YUAN 2.0 GSM8K instruction (`tasks/GSM8K/eval_for_gsm8k.py`). */
export const YUAN_GSM8K_INSTRUCTION = '详细分析并求解以下数学问题。\n';

function validateGsm8k(options: Record<string, unknown>): Gsm8kOptions {
  const o = checkOptions('gsm8k', GSM8K_DEFAULTS, options);
  resolveProtocol('gsm8k', o.protocol, o.lang, { yuan: ['zh', 'en'], default: ['en'] });
  if (!['qa', 'yuan'].includes(o.prompt)) throw new ConfigError(`gsm8k: prompt "${o.prompt}": expected qa or yuan`);
  return o;
}

/**
 * GSM8K: grade-school math, greedy accuracy and maj@k self-consistency. Under `protocol: 'yuan'` the questions come
 * from yuan-eval/gsm8k_Cn.txt (lang zh) or gsm8k_En.txt (lang en), the prompt is `详细分析并求解以下数学问题。\n{q}<sep>`
 * and each completion is scored by `scoreYuanGsm8k` (YUAN's score_gsm8k.py); ids are the files' 0-based line indexes.
 */
export const gsm8kEvaluator: EvaluatorPlugin<Gsm8kOptions> = {
  kind: 'evaluator',
  name: 'gsm8k',
  description: 'GSM8K accuracy and maj@k self-consistency (--protocol yuan: the YUAN 2.0 files, prompt and scorer)',
  defaults: GSM8K_DEFAULTS,
  flags: {
    'prompt-style': { option: 'prompt', type: 'string', help: 'qa|yuan' },
    protocol: {
      option: 'protocol',
      type: 'string',
      help: "default|yuan (the YUAN 2.0 paper's files, prompts and scorers)",
    },
    lang: { option: 'lang', type: 'string', help: 'zh|en' },
  },
  validate: validateGsm8k,
  async evaluate(ctx, raw) {
    const o = validateGsm8k(raw as unknown as Record<string, unknown>);
    const { protocol, lang } = resolveProtocol('gsm8k', o.protocol, o.lang, { yuan: ['zh', 'en'], default: ['en'] });
    if (protocol === 'default')
      return gsm8kDefault.evaluate(ctx, { prompt: o.prompt, maxNewTokens: o.maxNewTokens || 512 });
    const file = lang === 'zh' ? 'gsm8k_Cn.txt' : 'gsm8k_En.txt';
    const { items, bad } = loadSepFile(ctx.settings.dataDir, file);
    return runGenerative(ctx, {
      name: 'gsm8k',
      file,
      items,
      bad,
      prompt: (r) => `${YUAN_GSM8K_INSTRUCTION}${fromYuanText(r.question)}<sep>`,
      score: (r, c) => {
        const v = scoreYuanGsm8k(c, r.answer);
        return { correct: v.correct, answer: v.answer, extra: { segment: v.segment } };
      },
      gold: (r) => r.answer,
      maxNewTokens: o.maxNewTokens || 1024,
      details: { lang },
      ...(lang === 'en'
        ? { paperNote: 'paper numbers are for the Chinese file (gsm8k_Cn.txt); this run used English' }
        : {}),
    });
  },
};

/** SVAMP: arithmetic word problems, scored like GSM8K. */
export const svampEvaluator = mathEvaluator('svamp', 'SVAMP accuracy and maj@k self-consistency', (d) => loadSvamp(d));
