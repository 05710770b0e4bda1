/** Character classes used by the text statistics, by code point. */

/** Han ideographs (CJK Unified Ideographs and extensions, compatibility ideographs). */
export function isHan(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x20000 && cp <= 0x3134f)
  );
}

/** Hiragana and katakana. */
export function isKana(cp: number): boolean {
  return (cp >= 0x3040 && cp <= 0x30ff) || (cp >= 0x31f0 && cp <= 0x31ff) || (cp >= 0xff66 && cp <= 0xff9d);
}

/** Characters written without spaces between words: each one counts as a word (Han and kana). */
export function isCjkWordChar(cp: number): boolean {
  return isHan(cp) || isKana(cp);
}

/** CJK punctuation and full-width forms that separate words like spaces do (、。「」『』【】《》〈〉…). */
export function isCjkPunct(cp: number): boolean {
  return (
    (cp >= 0x3000 && cp <= 0x303f) ||
    (cp >= 0xff01 && cp <= 0xff0f) ||
    (cp >= 0xff1a && cp <= 0xff20) ||
    cp === 0x2026 ||
    cp === 0x2014 ||
    (cp >= 0x2018 && cp <= 0x201f)
  );
}

/** White space (ASCII and Unicode space separators, ideographic space). */
export function isSpace(cp: number): boolean {
  return (
    cp === 32 ||
    (cp >= 9 && cp <= 13) ||
    cp === 0xa0 ||
    cp === 0x3000 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x1680 ||
    cp === 0x85
  );
}

const LETTER = /\p{L}/u;
const ALNUM = /[\p{L}\p{N}]/u;

/** A letter in any script. */
export function isLetter(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return LETTER.test(ch);
}

/** A letter or digit in any script. */
export function isAlnum(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return ALNUM.test(ch);
}

/** Length of a word without the non-alphanumeric characters at its two ends. */
export function coreLength(w: string): number {
  let a = 0;
  let b = w.length;
  while (a < b && !isAlnum(w[a])) a++;
  while (b > a && !isAlnum(w[b - 1])) b--;
  return b - a;
}

/** A word lower-cased, without the non-letter characters at its two ends. */
export function coreLower(w: string): string {
  let a = 0;
  let b = w.length;
  while (a < b && !isLetter(w[a])) a++;
  while (b > a && !isLetter(w[b - 1])) b--;
  return (a === 0 && b === w.length ? w : w.slice(a, b)).toLowerCase();
}

/** A high surrogate: a text without one has a code point per UTF-16 unit. */
const HIGH_SURROGATE = /[\ud800-\udbff]/;

/** Number of code points of a string (what `[...s].length` counts: a surrogate pair is one, a lone surrogate one). */
export function codePointCount(s: string): number {
  // The regular expression finds no high surrogate in a one-byte string at once, and scans others in native code.
  if (!HIGH_SURROGATE.test(s)) return s.length;
  let n = s.length;
  for (let i = 0; i + 1 < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}
