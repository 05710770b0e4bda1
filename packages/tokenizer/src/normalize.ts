import type { SpNormalizerSpec } from './sp-model.js';

/** SentencePiece's meta symbol for a space, U+2581. */
export const SPACE_SYMBOL = '\u2581';

/** The normalizer options that apply when the model has no precompiled character map. */
export interface NormalizeOptions extends Pick<
  SpNormalizerSpec,
  'addDummyPrefix' | 'removeExtraWhitespaces' | 'escapeWhitespaces'
> {
  treatWhitespaceAsSuffix: boolean;
}

/**
 * SentencePiece normalization with an identity character map: optional removal of leading, trailing and repeated
 * spaces, the dummy-prefix space, and spaces escaped as ▁ (unless `escape` is false: then the caller reads ' ' as ▁).
 * Empty input stays empty.
 */
export function normalizeSp(text: string, o: NormalizeOptions, escape = true): string {
  let s = text;
  if (o.removeExtraWhitespaces) s = s.replace(/ +/g, ' ').replace(/^ | $/g, '');
  if (s.length === 0) return '';
  if (o.addDummyPrefix) s = o.treatWhitespaceAsSuffix ? s + ' ' : ' ' + s;
  return escape && o.escapeWhitespaces ? s.replaceAll(' ', SPACE_SYMBOL) : s;
}
