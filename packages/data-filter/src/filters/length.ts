import { num, obj } from '@yuan/core';
import { codePointCount } from '../text/chars.js';
import { check, defineFilter } from './define.js';

/** Options of `length`: bounds on the number of characters (code points) of the text. */
export interface LengthOptions {
  /** Default 32. */
  minChars: number;
  /** Default 1,000,000. */
  maxChars: number;
}

/** Drops documents shorter or longer than the character bounds. */
export const lengthFilter = defineFilter<LengthOptions>({
  name: 'length',
  description: 'drops documents with fewer than minChars or more than maxChars characters',
  defaults: { minChars: 32, maxChars: 1_000_000 },
  schema: {
    expected: 'length options',
    parse(value, path) {
      const o = obj({ minChars: num({ int: true, min: 0 }), maxChars: num({ int: true, min: 1 }) }).parse(value, path);
      check(o.minChars <= o.maxChars, `${path}.minChars (${o.minChars}) must not exceed maxChars (${o.maxChars})`);
      return o;
    },
  },
  create(o) {
    return {
      apply(doc) {
        const n = codePointCount(doc.text);
        if (n < o.minChars) return { keep: false, reason: 'too-short', detail: `${n} < ${o.minChars} chars` };
        if (n > o.maxChars) return { keep: false, reason: 'too-long', detail: `${n} > ${o.maxChars} chars` };
        return { keep: true };
      },
    };
  },
});
