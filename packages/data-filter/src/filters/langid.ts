import { arrayOf, num, obj, optional, record, str } from '@yuan/core';
import { detectLanguage } from '../lang/detect.js';
import { analyze } from '../text/analysis.js';
import { defineFilter } from './define.js';

/** Options of `langid`. */
export interface LangIdOptions {
  /** Languages kept. Default zh, en, code. */
  languages: string[];
  /** Minimum score for a kept language. Default 0.5. */
  threshold: number;
  /** Per-language minimum scores overriding `threshold`, e.g. `{ en: 0.6 }`. Default none. */
  thresholds?: Record<string, number>;
  /** Code-score (share of code-like lines) at which a text is labelled `code`. Default 0.5. */
  codeThreshold: number;
  /** Characters examined per document. Default 20000. */
  sampleChars: number;
}

const KEEP = { keep: true } as const;

/** Labels each document with a language and score, and drops languages not listed or scores under the threshold. */
export const langidFilter = defineFilter<LangIdOptions>({
  name: 'langid',
  description:
    'language identification (zh, ja, ko, en, fr, de, es, it, pt, nl, ru, ..., code, other) with a score threshold',
  defaults: { languages: ['zh', 'en', 'code'], threshold: 0.5, codeThreshold: 0.5, sampleChars: 20000 },
  schema: {
    expected: 'langid options',
    parse(value, path) {
      const o = obj({
        languages: arrayOf(str(), { minLength: 1 }),
        threshold: num({ min: 0, max: 1 }),
        thresholds: optional(record()),
        codeThreshold: num({ min: 0, max: 1 }),
        sampleChars: num({ int: true, min: 1 }),
      }).parse(value, path);
      const thresholds: Record<string, number> = {};
      for (const [k, v] of Object.entries(o.thresholds ?? {}))
        thresholds[k] = num({ min: 0, max: 1 }).parse(v, `${path}.thresholds.${k}`);
      return { ...o, thresholds };
    },
  },
  create(o) {
    const keep = new Set(o.languages);
    return {
      apply(doc) {
        const guess = detectLanguage(doc.text, o, doc.text.length <= o.sampleChars ? analyze(doc) : undefined);
        doc.lang = guess.lang;
        doc.langScore = Math.round(guess.score * 1e4) / 1e4;
        if (!keep.has(guess.lang))
          return { keep: false, reason: `language:${guess.lang}`, detail: `${guess.lang} ${doc.langScore.toFixed(3)}` };
        const min = o.thresholds?.[guess.lang] ?? o.threshold;
        if (guess.score < min)
          return {
            keep: false,
            reason: `low-score:${guess.lang}`,
            detail: `${guess.lang} ${doc.langScore.toFixed(3)} < ${min}`,
          };
        return KEEP;
      },
    };
  },
});
