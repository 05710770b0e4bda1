/** Punctuation sets shared by the line- and sentence-level heuristics (Latin and CJK). */

const TERMINAL = /[.!?。！？．…](?:["'”’」』》〉】）)\]]*)$/;
const ELLIPSIS = /(?:\.\.\.|…)(?:["'”’」』）)\]]*)$/;
const BULLET = /^\s*(?:[•●○◦▪▫■□‣⁃·◆◇▶►✓✔➢→]|[-*–—](?=\s))/;
const SENTENCE_END = /[.!?]+["'”’)\]]*(?=\s|$)|[。！？．]+|…+(?=\s|$)/g;

/** The line (trimmed of trailing space) ends with terminal punctuation, possibly followed by closing quotes or brackets. */
export function endsWithTerminal(line: string): boolean {
  return TERMINAL.test(line.trimEnd());
}

/** The line ends with an ellipsis (`...` or `…`). */
export function endsWithEllipsis(line: string): boolean {
  return ELLIPSIS.test(line.trimEnd());
}

/** The line starts with a bullet mark. */
export function startsWithBullet(line: string): boolean {
  return BULLET.test(line);
}

/** Number of sentence ends in a text (Latin `.!?` followed by space or end, full-width `。！？．` anywhere). */
export function countSentences(text: string): number {
  let n = 0;
  SENTENCE_END.lastIndex = 0;
  while (SENTENCE_END.exec(text)) n++;
  return n;
}
