import { escapeRegExp } from '@yuan/core';

/**
 * Searches texts for phrases after lower-casing them (`text.toLowerCase().includes(phrase.toLowerCase())`), without
 * lower-casing a text that cannot contain any: one case-insensitive regular expression over all phrases runs first.
 * A text with no case-insensitive match has no match once lower-cased: every character that lower-cases to one code
 * point case-folds together with its lower case (checked over all of Unicode), and the one character that lower-cases
 * to two, U+0130 İ (to `i̇`), sends its texts the exact way.
 */
export class LowerCasePhrases {
  private readonly any?: RegExp;

  constructor(phrases: readonly string[]) {
    this.any =
      phrases.length > 0 ? new RegExp(phrases.map((p) => escapeRegExp(p.toLowerCase())).join('|'), 'iu') : undefined;
  }

  /** `text.toLowerCase()` when it may contain one of the phrases, else '' (which contains none, unless one is ''). */
  lowerIfAny(text: string): string {
    return this.any && (text.includes('\u0130') || this.any.test(text)) ? text.toLowerCase() : '';
  }
}
