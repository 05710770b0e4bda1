import { lastBoxed, normalizeNumber } from './number.js';

function clean(part: string): string {
  return part
    .replace(/\\left|\\right|\\!|\\,|\$|\s/g, '')
    .replace(/\\dfrac|\\tfrac/g, '\\frac')
    .replace(/^\\text\{(.*)\}$/, '$1')
    .replace(/[.。]$/, '');
}

/** The answer parts of a cloze gold or prediction (`a;b` for several blanks), each without `$`, spaces or `\left`. */
export function clozeParts(text: string): string[] {
  return text
    .split(/[;；]/)
    .map(clean)
    .filter((p) => p !== '');
}

/** The cloze answer of a completion: the last `\boxed{}`, else the text after the last answer cue, else its last line. */
export function extractCloze(completion: string): string {
  const boxed = lastBoxed(completion);
  if (boxed !== null) return boxed;
  const cue = /(?:answer is|answer:|答案(?:是|为)?\s*[:：]?)\s*/gi;
  const cues = [...completion.matchAll(cue)];
  const last = cues[cues.length - 1];
  const tail = last ? completion.slice(last.index! + last[0].length) : (completion.trim().split('\n').pop() ?? '');
  return tail.split('\n')[0]!.trim();
}

/** Whether a predicted cloze answer equals the gold, blank by blank (numerically where both parts are numbers). */
export function clozeMatches(prediction: string, gold: string): boolean {
  const p = clozeParts(prediction);
  const g = clozeParts(gold);
  if (g.length === 0 || p.length !== g.length) return false;
  return g.every((gp, i) => {
    const a = normalizeNumber(gp);
    const b = normalizeNumber(p[i]!);
    return a !== null && b !== null ? Number(a) === Number(b) : gp === p[i];
  });
}
