/**
 * Punctuation sets shared by the line- and sentence-level heuristics (Latin and CJK). The line tests are character
 * scans equivalent to these regular expressions (fastpaths.test.ts checks them against the expressions on fuzzed text):
 * - endsWithTerminal: `/[.!?。！？．…](?:["'”’」』》〉】）)\]]*)$/` on the line without trailing white space
 * - endsWithEllipsis: `/(?:\.\.\.|…)(?:["'”’」』）)\]]*)$/` on the line without trailing white space
 * - startsWithBullet: `/^\s*(?:[•●○◦▪▫■□‣⁃·◆◇▶►✓✔➢→]|[-*–—](?=\s))/`
 */

const SPACE = 1;
const TERMINAL = 2;
const TERMINAL_CLOSER = 4;
const ELLIPSIS_CLOSER = 8;
const BULLET = 16;
const DASH = 32;

/** Classes of the BMP code units (bit flags above); every character named here is in the BMP. */
const CLASS = new Uint8Array(0x10000);
const mark = (chars: string, bit: number) => {
  for (const ch of chars) CLASS[ch.charCodeAt(0)] |= bit;
};
// `\s` of a regular expression, which is also what trim() removes.
mark(
  '\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff',
  SPACE,
);
mark('.!?。！？．…', TERMINAL);
mark('"\'”’」』》〉】）)]', TERMINAL_CLOSER);
mark('"\'”’」』）)]', ELLIPSIS_CLOSER);
mark('•●○◦▪▫■□‣⁃·◆◇▶►✓✔➢→', BULLET);
mark('-*–—', DASH);

/** Index of the last character of `line` that is not white space, or -1. */
function lastNonSpace(line: string): number {
  let i = line.length - 1;
  while (i >= 0 && CLASS[line.charCodeAt(i)] & SPACE) i--;
  return i;
}

/** Whether the line is empty or only white space (`line.trim() === ''`). */
export function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) if ((CLASS[line.charCodeAt(i)] & SPACE) === 0) return false;
  return true;
}

/** The line (trimmed of trailing space) ends with terminal punctuation, possibly followed by closing quotes or brackets. */
export function endsWithTerminal(line: string): boolean {
  let i = lastNonSpace(line);
  while (i >= 0 && CLASS[line.charCodeAt(i)] & TERMINAL_CLOSER) i--;
  return i >= 0 && (CLASS[line.charCodeAt(i)] & TERMINAL) !== 0;
}

/** The line ends with an ellipsis (`...` or `…`), possibly followed by closing quotes or brackets. */
export function endsWithEllipsis(line: string): boolean {
  let i = lastNonSpace(line);
  while (i >= 0 && CLASS[line.charCodeAt(i)] & ELLIPSIS_CLOSER) i--;
  if (i < 0) return false;
  const c = line.charCodeAt(i);
  return c === 0x2026 || (c === 46 && i >= 2 && line.charCodeAt(i - 1) === 46 && line.charCodeAt(i - 2) === 46);
}

/** The line starts with a bullet mark (after any white space); a dash or `*` is a bullet when white space follows it. */
export function startsWithBullet(line: string): boolean {
  let i = 0;
  while (i < line.length && CLASS[line.charCodeAt(i)] & SPACE) i++;
  if (i >= line.length) return false;
  const c = CLASS[line.charCodeAt(i)];
  if (c & BULLET) return true;
  return (c & DASH) !== 0 && i + 1 < line.length && (CLASS[line.charCodeAt(i + 1)] & SPACE) !== 0;
}

const SENTENCE_END = /[.!?]+["'”’)\]]*(?=\s|$)|[。！？．]+|…+(?=\s|$)/g;

/**
 * Number of sentence ends in a text (Latin `.!?` followed by space or end, full-width `。！？．` anywhere), counted up
 * to `limit` (a caller that only compares with a minimum stops there).
 */
export function countSentences(text: string, limit = Infinity): number {
  let n = 0;
  SENTENCE_END.lastIndex = 0;
  // `test` moves `lastIndex` as `exec` does, without building a match array.
  while (n < limit && SENTENCE_END.test(text)) n++;
  return n;
}
