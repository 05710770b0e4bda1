const NUMBER = /-?\d[\d,]*(?:\.\d+)?|-?\.\d+/g;

/** Canonical text of a number written with commas, `$`, spaces or a trailing period; null when it is not a number. */
export function normalizeNumber(text: string): string | null {
  const cleaned = text.replace(/[$,\s]/g, '').replace(/\.$/, '');
  if (!/^-?(?:\d+(?:\.\d*)?|\.\d+)$/.test(cleaned)) return null;
  const value = Number(cleaned);
  if (!Number.isFinite(value)) return null;
  return String(Object.is(value, -0) ? 0 : Number(value.toPrecision(15)));
}

/** The last number in a piece of text (commas and `$` allowed inside), normalised; null when there is none. */
export function lastNumber(text: string): string | null {
  const found = text.replace(/\$/g, '').match(NUMBER);
  if (!found) return null;
  for (let i = found.length - 1; i >= 0; i--) {
    const n = normalizeNumber(found[i]!);
    if (n !== null) return n;
  }
  return null;
}

/** Contents of the last `\boxed{...}` (balanced braces), or null. */
export function lastBoxed(text: string): string | null {
  const at = text.lastIndexOf('\\boxed{');
  if (at < 0) return null;
  let depth = 0;
  for (let i = at + 6; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(at + 7, i);
  }
  return null;
}

/** The gold answer of a GSM8K solution: the number after `#### `. */
export function gsm8kGold(solution: string): string | null {
  const at = solution.lastIndexOf('#### ');
  return at < 0 ? null : normalizeNumber(solution.slice(at + 5).trim());
}

const ANSWER_IS = /(?:the (?:final )?answer is|answer:|答案是|答案为|答案：)\s*:?\s*\$?\s*(-?[\d,]*\.?\d+)/gi;

/**
 * The numeric answer of a math completion, tried in order: the last `\boxed{}`, the last "The answer is N" (or
 * "Answer: N", "答案是N"), the last `#### N`, else the last number. Commas and `$` are stripped; null when none.
 */
export function extractNumericAnswer(completion: string): string | null {
  const boxed = lastBoxed(completion);
  if (boxed !== null) {
    const n = lastNumber(boxed);
    if (n !== null) return n;
  }
  const said = [...completion.matchAll(ANSWER_IS)];
  if (said.length > 0) {
    const n = normalizeNumber(said[said.length - 1]![1]!);
    if (n !== null) return n;
  }
  const hashes = completion.lastIndexOf('#### ');
  if (hashes >= 0) {
    const n = lastNumber(completion.slice(hashes + 5).split('\n')[0]!);
    if (n !== null) return n;
  }
  return lastNumber(completion);
}

/** Whether two normalised numeric answers are equal (to a relative 1e-9). */
export function sameNumber(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return false;
  const x = Number(a);
  const y = Number(b);
  return x === y || Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x), Math.abs(y));
}
