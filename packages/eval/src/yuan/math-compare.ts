import { ComputeEngine } from '@cortex-js/compute-engine';
import { lastBoxed } from '../extract/number.js';
import { fromYuanText } from './files.js';

let engine: ComputeEngine | undefined;
const ce = () => (engine ??= new ComputeEngine());

/** A cloze answer part without `$`, spaces, `\left`/`\right`, thin spaces, `{,}` thousands separators, `\dfrac`, a final period or `\text{}` wrapping. */
export function normalizeLatex(part: string): string {
  return part
    .replace(/\\left|\\right|\\[!,;:]|\\displaystyle|\$|\s/g, '')
    .replace(/(?<=\d)\{,\}(?=\d)/g, '')
    .replace(/\\[dt]frac/g, '\\frac')
    .replace(/\\mathrm\{e\}/g, 'e')
    .replace(/\\mathrm\{i\}/g, 'i')
    .replace(/^\\text\{(.*)\}$/, '$1')
    .replace(/[.。，,]+$/, '');
}

// Fixed points at which expressions in free variables are compared (away from the usual poles 0, ±1, 2).
const POINTS = [0.3719, 1.6183, -2.2361];

type Value = { re: number; im: number };

/** The numeric value of a LaTeX expression at a point (its free variables all set to `at`), or null. */
function valueAt(latex: string, at: number): Value | null {
  const expr = ce().parse(latex);
  if (!expr.isValid) return null;
  const vars = Object.fromEntries(expr.unknowns.map((u) => [u, at]));
  const n = (expr.unknowns.length ? expr.subs(vars) : expr).N();
  const re = n.re;
  const im = n.im ?? 0;
  return typeof re === 'number' && !Number.isNaN(re) ? { re, im: Number.isNaN(im) ? 0 : im } : null;
}

const close = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));

/** Whether two expressions agree numerically at every comparison point (and are defined at one at least). */
function sameValue(a: string, b: string): boolean {
  let defined = 0;
  for (const p of POINTS) {
    const x = valueAt(a, p);
    const y = valueAt(b, p);
    if (x === null || y === null) {
      if ((x === null) !== (y === null)) return false;
      continue;
    }
    if (!Number.isFinite(x.re) || !Number.isFinite(y.re)) {
      if (x.re !== y.re) return false;
    } else if (!close(x.re, y.re) || !close(x.im, y.im)) return false;
    defined++;
  }
  return defined > 0;
}

/** Splits at top-level commas (outside braces and brackets). */
function topLevelSplit(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if ('{(['.includes(c)) depth++;
    else if ('})]'.includes(c)) depth--;
    else if (depth === 0 && text.startsWith(sep, i)) {
      out.push(text.slice(start, i));
      start = i + sep.length;
    }
  }
  out.push(text.slice(start));
  return out;
}

/** An interval, point or union of them: `(a,b]`, `(-\infty,0)\cup(0,1]`; null when the text is not one. */
function intervals(text: string): { open: string; close: string; ends: string[] }[] | null {
  const pieces = text.split(/\\cup|∪/);
  const out = [];
  for (const p of pieces) {
    const m = /^([([])(.*)([)\]])$/.exec(p);
    if (!m) return null;
    const ends = topLevelSplit(m[2]!, ',');
    if (ends.length < 2) return null;
    out.push({ open: m[1]!, close: m[3]!, ends: ends.map((e) => e.replace(/^\+?\\infty$/, '\\infty')) });
  }
  return out;
}

/** Equation `lhs=rhs` as the expression `(lhs)-(rhs)`, or null when the text has no single `=`. */
function equation(text: string): string | null {
  const sides = topLevelSplit(text, '=');
  return sides.length === 2 && sides[0] && sides[1] ? `(${sides[0]})-(${sides[1]})` : null;
}

/** Whether two equations describe the same relation: their `lhs - rhs` are proportional at the comparison points. */
function sameEquation(a: string, b: string): boolean {
  let ratio: number | null = null;
  for (const p of [...POINTS, 0.8123]) {
    // two free variables (x, y): vary them differently by evaluating at shifted points through a substitution
    const x = valueAtPair(a, p);
    const y = valueAtPair(b, p);
    if (x === null || y === null) return false;
    if (close(y, 0) && close(x, 0)) continue;
    if (close(y, 0) || close(x, 0)) return false;
    const r = x / y;
    if (ratio === null) ratio = r;
    else if (!close(r, ratio)) return false;
  }
  return ratio !== null;
}

/** The value of an expression with each free variable set to a different function of `p` (so x and y vary independently). */
function valueAtPair(latex: string, p: number): number | null {
  const expr = ce().parse(latex);
  if (!expr.isValid) return null;
  const names = [...expr.unknowns].sort();
  const vars = Object.fromEntries(names.map((u, i) => [u, 2 * Math.sin(p * (i + 1.7) * 5.1 + i) + 0.31 * (i + 1)]));
  const n = expr.subs(vars).N().re;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

function samePart(pred: string, gold: string): boolean {
  const p = normalizeLatex(pred);
  const g = normalizeLatex(gold);
  if (p === g) return true;
  if (p === '' || g === '') return false;
  try {
    const gi = intervals(g);
    const pi = intervals(p);
    if (gi || pi) {
      if (!gi || !pi || gi.length !== pi.length) return false;
      return gi.every((x, i) => {
        const y = pi[i]!;
        return (
          x.open === y.open &&
          x.close === y.close &&
          x.ends.length === y.ends.length &&
          x.ends.every((e, j) => samePart(y.ends[j]!, e))
        );
      });
    }
    const ge = equation(g);
    const pe = equation(p);
    if (ge || pe) {
      if (!ge || !pe) return false;
      if (ge.includes('\\pm') || pe.includes('\\pm')) {
        return ['+', '-'].every((s) => sameEquation(pe.replace(/\\pm/g, s), ge.replace(/\\pm/g, s)));
      }
      return sameEquation(pe, ge);
    }
    if (/[\u4e00-\u9fff]/.test(g) || /\\text/.test(g)) return false;
    return sameValue(p, g);
  } catch {
    return false;
  }
}

/** The parts of a cloze answer: several blanks are joined by `;` (or `；`). */
export function clozeAnswerParts(text: string): string[] {
  return fromYuanText(text)
    .split(/[;；]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Whether a predicted Gaokao-Math-Cloze answer equals the gold mathematically, blank by blank (`a;b`): equal after
 * normalising LaTeX (`$`, spaces, `\left`, `\dfrac`, `\mathrm{e}`); intervals and unions by their brackets and
 * endpoints; equations `l=r` by `l-r` being proportional; expressions (with `\frac`, `\sqrt`, `\pi`, `^{\circ}`, `i`,
 * free variables such as `n`) by their values at fixed points, to a relative 1e-6, evaluated with
 * @cortex-js/compute-engine. Text answers (Chinese, `\text`) must match exactly after normalising.
 */
export function mathClozeEqual(prediction: string, gold: string): boolean {
  const p = clozeAnswerParts(prediction);
  const g = clozeAnswerParts(gold);
  return g.length > 0 && p.length === g.length && g.every((part, i) => samePart(p[i]!, part));
}

/**
 * The cloze answer of a completion (YUAN writes `<n>` for newlines): the last `\boxed{}` (several boxed answers are
 * joined by `;`), else the text after the last "答案为/答案是/故填/故答案为/答案：", else the last line; cut at the
 * end of its sentence.
 */
export function extractYuanCloze(completion: string): string {
  const text = fromYuanText(completion).trim();
  const boxes: string[] = [];
  let rest = text;
  for (let b = lastBoxed(rest); b !== null; b = lastBoxed(rest)) {
    boxes.unshift(b);
    rest = rest.slice(0, rest.lastIndexOf('\\boxed{'));
  }
  if (boxes.length) {
    // boxes of one final sentence (the last line) are the answer; earlier boxed work is not
    const lastLine = text.split('\n').pop() ?? '';
    const inLast = boxes.slice(-Math.max(1, (lastLine.match(/\\boxed\{/g) ?? []).length));
    return inLast.join(';');
  }
  const cues = [...text.matchAll(/(?:故答案[为是]|答案[为是]|故填|答案[:：])\s*[:：]?\s*/g)];
  const last = cues[cues.length - 1];
  const tail = last ? text.slice(last.index! + last[0].length) : (text.split('\n').pop() ?? '');
  return tail
    .split('\n')[0]!
    .replace(/[。．]\s*$/, '')
    .replace(/\$/g, '')
    .trim();
}
