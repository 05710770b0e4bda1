// A number in plain text (after `plainMathText`): an optional minus that does not follow a word, digit or closing
// bracket (so `10-4` is 10 and 4), digits with proper comma thousands groups or none, an optional decimal part, and an
// optional `/denominator` (a plain fraction `3/4`); or a bare decimal `.5`.
const NUMBER =
  /(?:(?<![\w)\]}.])-)?(?:(?<!\d|\d\.)(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\/\d+(?:\.\d+)?(?![\d/]))?|(?<![\w.])\.\d+)/g;

// Spaces that typeset a thousands separator: LaTeX `\,` `\ ` `\;` `\:` `~`, and thin, narrow no-break, no-break,
// figure and hair spaces.
const SPACE_SEP = String.raw`(?:\\[,;: ]|~|[\u00a0\u2007\u2009\u200a\u202f])`;
const SPACE_THOUSANDS = new RegExp(String.raw`(?<![\d.])(\d{1,3})((?:${SPACE_SEP}\d{3})+)(?![\d])`, 'g');
const WRAPPERS = /\\(?:text|textrm|textbf|textit|textnormal|mathrm|mathbf|mathit|mathsf|mbox|operatorname|rm|bf)\s*\{/g;
const FULL_WIDTH: Record<string, string> = {
  '％': '%',
  '＄': '$',
  '￥': '¥',
  '－': '-',
  '−': '-',
  '．': '.',
  '⁄': '/',
};

/** Index of the brace closing the one opened at `open` (balanced), or -1. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/** `\text{…}`-like wrappers replaced by their contents (innermost first, so nesting unwraps fully). */
function unwrap(text: string): string {
  for (let guard = 0; guard < 100; guard++) {
    const found = [...text.matchAll(WRAPPERS)];
    if (found.length === 0) return text;
    const m = found[found.length - 1]!;
    const open = m.index! + m[0].length - 1;
    const close = closingBrace(text, open);
    if (close < 0) return text.slice(0, m.index!) + text.slice(open + 1);
    text = text.slice(0, m.index!) + text.slice(open + 1, close) + text.slice(close + 1);
  }
  return text;
}

/** One argument of a LaTeX command at `at`: `{…}` (balanced) or a single character (`\frac12`); null when absent. */
function argument(text: string, at: number): { value: string; end: number } | null {
  while (text[at] === ' ') at++;
  if (at >= text.length) return null;
  if (text[at] === '{') {
    const close = closingBrace(text, at);
    return close < 0 ? null : { value: text.slice(at + 1, close), end: close + 1 };
  }
  return /[\da-zA-Z]/.test(text[at]!) ? { value: text[at]!, end: at + 1 } : null;
}

/** The value of a plain number (`-1,234.5`, `3/4`) standing alone in a string, or null. */
function valueOf(text: string): number | null {
  const t = text.trim();
  const m = /^(-)?(\d{1,3}(?:,\d{3})+|\d+)?(?:\.(\d+))?(?:\/(\d+(?:\.\d+)?))?$/.exec(t);
  if (!m || (m[2] === undefined && m[3] === undefined)) return null;
  let v = Number(`${(m[2] ?? '0').replace(/,/g, '')}.${m[3] ?? '0'}`);
  if (m[4] !== undefined) v /= Number(m[4]);
  if (m[1]) v = -v;
  return Number.isFinite(v) ? v : null;
}

/** A number as canonical text: at most 15 significant digits, no `-0`. */
function canonical(value: number): string {
  return String(Object.is(value, -0) ? 0 : Number(value.toPrecision(15)));
}

/** `\frac`/`\dfrac`/`\tfrac{a}{b}` of numbers replaced by their value (a mixed number `2\frac{1}{2}` by 2.5). */
function fractions(text: string): string {
  for (let guard = 0; guard < 100; guard++) {
    const m = /\\[dt]?frac(?![a-zA-Z])/.exec(text);
    if (!m) return text;
    const a = argument(text, m.index + m[0].length);
    const b = a && argument(text, a.end);
    const num = a && valueOf(plainMathText(a.value));
    const den = b && valueOf(plainMathText(b.value));
    if (!a || !b || num === null || den === null || den === 0) {
      // not a fraction of numbers: keep its parts readable as `(a)/(b)` and go on
      text =
        text.slice(0, m.index) +
        (a && b ? `(${a.value})/(${b.value})` : '') +
        text.slice(a && b ? b.end : m.index + m[0].length);
      continue;
    }
    let start = m.index;
    let value = num / den;
    const whole = /(?<![\w.,/^])(-?)(\d+)\s*$/.exec(text.slice(0, start));
    if (whole && num >= 0 && num < den) {
      // a mixed number: whole part written right before the fraction (its minus only when it follows no operand)
      const negative = whole[1] === '-' && !/[\w)\]}]$/.test(text.slice(0, whole.index));
      start = whole.index + (whole[1] && !negative ? 1 : 0);
      value = (Number(whole[2]) + value) * (negative ? -1 : 1);
    }
    text = text.slice(0, start) + canonical(value) + text.slice(b.end);
  }
  return text;
}

/**
 * A text with LaTeX and typographic number forms rewritten as plain numbers, so a number reads as one token:
 * `70{,}000`, `70\,000`, `70\!,\!000`, thin / narrow no-break / no-break spaces between digit groups → `70,000`;
 * `\text{…}`/`\mathrm{…}` unwrapped (units); `\frac`/`\dfrac`/`\tfrac{a}{b}` of numbers → their value; `\%` → `%`;
 * `\$`, `$` and `\left`/`\right` removed; full-width digits, `％`, `－` and the minus sign U+2212 made ASCII.
 */
export function plainMathText(text: string): string {
  let t = text
    .replace(/[\uff10-\uff19]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xff10 + 48))
    .replace(/[％＄￥－−．⁄]/g, (c) => FULL_WIDTH[c]!)
    .replace(/\\(?:left|right|displaystyle)(?![a-zA-Z])/g, '')
    .replace(/\\!/g, '')
    .replace(/(?<=\d)\{([,.])\}(?=\d)/g, '$1')
    .replace(/\\%/g, '%')
    .replace(/\\\$/g, '$')
    .replace(/-\s*\$/g, '-');
  t = unwrap(t);
  t = t.replace(
    SPACE_THOUSANDS,
    (_, head: string, rest: string) => head + rest.replace(new RegExp(SPACE_SEP, 'g'), ','),
  );
  t = fractions(t);
  return t.replace(/\$/g, ' ').replace(/\\[,;: ]|[\u00a0\u2007\u2009\u200a\u202f]/g, ' ');
}

/** The numbers of a text in order (after `plainMathText`), each normalised. */
export function numbersIn(text: string): string[] {
  const out: string[] = [];
  for (const m of plainMathText(text).matchAll(NUMBER)) {
    const v = valueOf(m[0]);
    if (v !== null) out.push(canonical(v));
  }
  return out;
}

/**
 * Canonical text of a number written alone: commas or typeset spaces between thousands, `$`/`\$`/`¥`/`元`, a percent
 * sign, a trailing period, a LaTeX fraction or `a/b`, `\text{}` units after it; null when it is not one number.
 */
export function normalizeNumber(text: string): string | null {
  const t = plainMathText(text)
    .replace(/[¥€£元]|\bUSD\b|%/g, ' ')
    .trim()
    .replace(/[.。]$/, '')
    .replace(/\s/g, '');
  const v = valueOf(t.replace(/^\+/, ''));
  return v === null ? null : canonical(v);
}

/** The last number in a piece of text (LaTeX and typographic forms included, see `plainMathText`), normalised; null when none. */
export function lastNumber(text: string): string | null {
  const all = numbersIn(text);
  return all.length ? all[all.length - 1]! : null;
}

/** Contents of the last `\boxed{...}` or `\fbox{...}` (balanced braces, `\boxed {` too), or null. */
export function lastBoxed(text: string): string | null {
  const found = [...text.matchAll(/\\(?:boxed|fbox)\s*\{/g)];
  for (let k = found.length - 1; k >= 0; k--) {
    const open = found[k]!.index! + found[k]![0].length - 1;
    const close = closingBrace(text, open);
    if (close >= 0) return text.slice(open + 1, close);
  }
  return null;
}

/** The gold answer of a GSM8K solution: the number after `#### `. */
export function gsm8kGold(solution: string): string | null {
  const at = solution.lastIndexOf('#### ');
  return at < 0 ? null : normalizeNumber(solution.slice(at + 5).trim());
}

// An answer cue; the answer is the first number after it on the same line, with no Latin letters in between.
const ANSWER_IS = /(?:the (?:final )?answer is|final answer:|answer:|答案是|答案为|答案[:：]|答[:：])/gi;

/**
 * The numeric answer of a math completion, tried in order: the last `\boxed{}` (its last number), the last "The answer
 * is N" (or "Answer: N", "答案是N"), the last `#### N`, else the last number. Numbers may be written in LaTeX or
 * typographic forms (`70{,}000`, `\$1,250`, `\frac{3}{4}`, `50\%`, `12\text{ km}`, thin spaces): see `plainMathText`.
 * Null when there is none.
 */
export function extractNumericAnswer(completion: string): string | null {
  const boxed = lastBoxed(completion);
  if (boxed !== null) {
    const n = lastNumber(boxed);
    if (n !== null) return n;
  }
  const text = plainMathText(completion);
  const said = [...text.matchAll(ANSWER_IS)];
  for (let k = said.length - 1; k >= 0; k--) {
    // the words after the cue up to the first Latin letter; of an equation there, its right-hand side
    const rest = text
      .slice(said[k]!.index! + said[k]![0].length)
      .split('\n')[0]!
      .split(/[A-Za-z]/)[0]!;
    const n = numbersIn(
      rest
        .split('=')
        .filter((side) => /\d/.test(side))
        .pop() ?? '',
    )[0];
    if (n !== undefined) return n;
  }
  const hashes = text.lastIndexOf('#### ');
  if (hashes >= 0) {
    const n = lastNumber(text.slice(hashes + 5).split('\n')[0]!);
    if (n !== null) return n;
  }
  return lastNumber(text);
}

/** Whether two normalised numeric answers are equal (to a relative 1e-9). */
export function sameNumber(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return false;
  const x = Number(a);
  const y = Number(b);
  return x === y || Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x), Math.abs(y));
}
