import { bool, num, obj, str } from '@yuan/core';
import { defineFilter } from './define.js';

/** Options of `normalize`. */
export interface NormalizeOptions {
  /** Unicode normal form applied first. Default NFKC (full-width Latin and digits become ASCII; 。、“” are unchanged). */
  form: 'NFKC' | 'NFC' | 'none';
  /**
   * Keep full-width punctuation (，！？：；（）．… U+FF01–FF0F, FF1A–FF20, FF3B–FF40, FF5B–FF65) as it is under NFKC,
   * which would turn it into ASCII: Chinese text keeps its own punctuation. Default true.
   */
  keepFullWidthPunct: boolean;
  /** Remove C0/C1 control characters other than tab and newline, and zero-width / BOM / soft-hyphen marks. Default true. */
  removeControl: boolean;
  /** Collapse runs of spaces inside a line to one space and strip trailing spaces; leading indentation is kept. Default true. */
  collapseSpaces: boolean;
  /** At most this many consecutive blank lines are kept. Default 1. */
  maxBlankLines: number;
}

const FULLWIDTH_PUNCT = /[\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]/;
const NOT_FULLWIDTH_PUNCT = /[^\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+/g;
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b\u00ad\ufeff]/g;
const NEEDS_COLLAPSE = /\S {2}|\t| \n| $/;
const ASCII_PRINTABLE = /^[\n\x20-\x7e]*$/;
/**
 * A character other than newline, printable ASCII, CJK unified ideographs, 、。《》〈〉「」『』【】‘’“” and the
 * full-width punctuation. A text without one is unchanged by NFC, and by NFKC keeping the full-width punctuation: each
 * of those characters is its own normal form and none combines with another.
 */
const NOT_NORMAL_SAFE =
  /[^\n\x20-\x7e\u4e00-\u9fff\u3001\u3002\u300a-\u3011\u2018\u2019\u201c\u201d\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]/;
/** What `collapseLine` may change in a line with non-ASCII text: a tab or Unicode space, two spaces, white space at a line end. */
const NEEDS_COLLAPSE_UNICODE = /[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]| {2}|[^\S\n]\n|[^\S\n]$/;

/** `NEEDS_COLLAPSE.test(t)`, with string searches first (a regex of four alternatives tried at every position is slow). */
function needsCollapseAscii(t: string): boolean {
  return t.includes('\t') || t.includes(' \n') || t.endsWith(' ') || (t.includes('  ') && NEEDS_COLLAPSE.test(t));
}

/** A line with runs of spaces inside it collapsed to one and trailing spaces stripped (its indentation kept). */
export function collapseLine(line: string): string {
  let i = 0;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++;
  const indent = line.slice(0, i);
  const body = line
    .slice(i)
    .replace(/[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+/g, ' ')
    .trimEnd();
  return body === '' ? '' : indent + body;
}

/** `collapseLine` of a line of printable ASCII characters. */
export function collapseAsciiLine(line: string): string {
  // Without two spaces in a row (printable ASCII has no tab) the indentation is at most one space and every run is
  // one space: only trailing space goes.
  if (!line.includes('  ')) return line.endsWith(' ') ? line.trimEnd() : line;
  return collapseLine(line);
}

/** Unicode normalisation, control-character removal and whitespace clean-up; drops documents left empty. */
export const normalizeFilter = defineFilter<NormalizeOptions>({
  name: 'normalize',
  description: 'Unicode NFKC, line endings, control characters and whitespace; drops documents that end up empty',
  defaults: { form: 'NFKC', keepFullWidthPunct: true, removeControl: true, collapseSpaces: true, maxBlankLines: 1 },
  schema: obj({
    form: str(['NFKC', 'NFC', 'none'] as const),
    keepFullWidthPunct: bool(),
    removeControl: bool(),
    collapseSpaces: bool(),
    maxBlankLines: num({ int: true, min: 0 }),
  }),
  create(o) {
    const blankRun = new RegExp(`\\n{${o.maxBlankLines + 2},}`, 'g');
    const blankJoin = '\n'.repeat(o.maxBlankLines + 1);
    const blankRunText = '\n'.repeat(o.maxBlankLines + 2);
    return {
      apply(doc) {
        const before = doc.text;
        let t = before;
        if (t.includes('\r')) t = t.replace(/\r\n?/g, '\n');
        const ascii = ASCII_PRINTABLE.test(t);
        if (!ascii) {
          t = (t as string & { toWellFormed(): string }).toWellFormed();
          if (o.form !== 'none' && (o.form === 'NFC' || o.keepFullWidthPunct) && !NOT_NORMAL_SAFE.test(t)) {
            // already in normal form
          } else if (o.form === 'NFKC' && o.keepFullWidthPunct && FULLWIDTH_PUNCT.test(t))
            t = t.replace(NOT_FULLWIDTH_PUNCT, (run) => run.normalize('NFKC'));
          else if (o.form !== 'none') t = t.normalize(o.form);
          if (o.removeControl) t = t.replace(CONTROL, '');
        }
        if (o.collapseSpaces && (ascii ? needsCollapseAscii(t) : NEEDS_COLLAPSE_UNICODE.test(t))) {
          // A printable ASCII line without two spaces in a row or a trailing space is its own collapsed form.
          t = t
            .split('\n')
            .map(ascii ? collapseAsciiLine : collapseLine)
            .join('\n');
        }
        if (t.includes(blankRunText)) t = t.replace(blankRun, blankJoin);
        if (t.charCodeAt(0) === 10 || t.charCodeAt(t.length - 1) === 10) t = t.replace(/^\n+|\n+$/g, '');
        if (t.trim() === '') return { keep: false, reason: 'empty', detail: 'nothing left after normalisation' };
        doc.text = t;
        return t === before ? { keep: true } : { keep: true, edits: { changed: 1 } };
      },
    };
  },
});
