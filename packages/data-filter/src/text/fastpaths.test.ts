import { describe, expect, it } from 'vitest';
import type { FilterDocument } from '@yuan/core';
import { c4Filter } from '../filters/c4.js';
import { collapseAsciiLine, collapseLine } from '../filters/normalize.js';
import { analyze } from './analysis.js';
import { endsWithEllipsis, endsWithTerminal, isBlank, startsWithBullet } from './punct.js';
import { LowerCasePhrases } from './phrases.js';
import { duplicateNgramShare, NgramCandidates, NgramKeys, topNgramShare, wordIds } from './repetition.js';

/** A small deterministic generator (tests must not depend on Math.random). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
}

const PIECES = [
  'the',
  'cat',
  'sat',
  'on',
  'a',
  'mat.',
  'It',
  'was',
  'happy!',
  'x',
  '42',
  '—',
  '...',
  '(12)',
  'javascript',
  'privacy policy',
  '中',
  '文',
  '的',
  '了',
  '。',
  '，',
  'カ',
  'ナ',
  '😀',
  '\ufeff',
  '\u200b',
  'İ',
  'Σ',
  'w\ufeffx',
  ' ',
  '  ',
  '\t',
  '\u3000',
  '\u00a0',
  '\u2028',
  '\u0085',
];
const LINES = [
  '',
  ' ',
  '\t ',
  '\ufeff',
  '\u3000',
  'ok',
  '\ufeff a b c d',
  'a b c d \ufeff',
  'Please enable JavaScript now.',
];

function fuzzText(r: () => number): string {
  const lines: string[] = [];
  const nLines = 1 + Math.floor(r() * 12);
  for (let l = 0; l < nLines; l++) {
    if (r() < 0.3) {
      lines.push(LINES[Math.floor(r() * LINES.length)]);
      continue;
    }
    const parts: string[] = [];
    const n = Math.floor(r() * 14);
    for (let i = 0; i < n; i++) parts.push(PIECES[Math.floor(r() * PIECES.length)]);
    lines.push(parts.join(r() < 0.8 ? ' ' : ''));
  }
  return (
    (r() < 0.2 ? '\ufeff\n ' : r() < 0.2 ? '\n\n\n' : '') +
    lines.join('\n') +
    (r() < 0.2 ? ' \n\ufeff' : r() < 0.2 ? '\n\n\n\n' : '')
  );
}

describe('c4 hands its line-cut text the analysis of the text it was cut from', () => {
  it('gives the same word tokens, offsets and CJK count as scanning the new text (fuzzed texts)', () => {
    const c4 = c4Filter.create({ ...c4Filter.defaults, minSentences: 0, cjkMinSentences: 0, paragraphMinSentences: 0 });
    const r = rng(7);
    let modified = 0;
    for (let i = 0; i < 4000; i++) {
      const lang = [undefined, 'en', 'zh'][i % 3];
      const doc: FilterDocument = { id: String(i), text: fuzzText(r), lang, record: {} };
      const d = c4.apply(doc);
      if (!d.keep || !d.edits) continue;
      modified++;
      const reused = analyze(doc);
      const fresh = analyze({ id: 'fresh', text: doc.text, lang, record: {} });
      expect(reused.text).toBe(doc.text);
      expect({
        ids: Array.from(reused.ids),
        starts: Array.from(reused.starts),
        ends: Array.from(reused.ends),
        cjk: reused.cjkChars,
      }).toEqual({
        ids: Array.from(fresh.ids),
        starts: Array.from(fresh.starts),
        ends: Array.from(fresh.ends),
        cjk: fresh.cjkChars,
      });
    }
    expect(modified).toBeGreaterThan(500);
  });
});

describe('punctuation tests are the regular expressions they replace', () => {
  const TERMINAL = /[.!?。！？．…](?:["'”’」』》〉】）)\]]*)$/;
  const ELLIPSIS = /(?:\.\.\.|…)(?:["'”’」』）)\]]*)$/;
  const BULLET = /^\s*(?:[•●○◦▪▫■□‣⁃·◆◇▶►✓✔➢→]|[-*–—](?=\s))/;
  const ALPHABET = [
    'a',
    'Z',
    '中',
    '.',
    '.',
    '!',
    '?',
    '。',
    '！',
    '？',
    '．',
    '…',
    '"',
    "'",
    '”',
    '’',
    '」',
    '』',
    '》',
    '〉',
    '】',
    '）',
    ')',
    ']',
    '•',
    '·',
    '→',
    '-',
    '*',
    '–',
    '—',
    ' ',
    ' ',
    '\t',
    '\n',
    '\u00a0',
    '\u3000',
    '\ufeff',
    '\u2028',
    '\u0085',
    '\u200b',
    '😀',
  ];

  it('agree on fuzzed lines and texts', () => {
    const r = rng(11);
    for (let i = 0; i < 200000; i++) {
      const len = Math.floor(r() * 12);
      let s = '';
      for (let k = 0; k < len; k++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
      expect(endsWithTerminal(s), JSON.stringify(s)).toBe(TERMINAL.test(s.trimEnd()));
      expect(endsWithEllipsis(s), JSON.stringify(s)).toBe(ELLIPSIS.test(s.trimEnd()));
      expect(startsWithBullet(s), JSON.stringify(s)).toBe(BULLET.test(s));
      expect(isBlank(s), JSON.stringify(s)).toBe(s.trim() === '');
    }
  });
});

describe('NgramCandidates gives the shares of the plain n-gram keys', () => {
  it('agrees with NgramKeys + topNgramShare / duplicateNgramShare for n = 1..12 (fuzzed word sequences)', () => {
    const r = rng(5);
    for (let t = 0; t < 1500; t++) {
      const vocab = 1 + Math.floor(r() * 12);
      const len = Math.floor(r() * 80);
      const words: string[] = [];
      for (let i = 0; i < len; i++)
        words.push(
          r() < 0.2 && words.length > 6
            ? words[words.length - 6]
            : `w${Math.floor(r() * vocab)}${'x'.repeat(Math.floor(r() * 3))}`,
        );
      const w = wordIds(words);
      const plain = new NgramKeys(w);
      const fast = new NgramCandidates(w, new Set(words).size);
      for (let n = 1; n <= 12; n++) {
        while (plain.n < n) plain.advance();
        while (fast.n < n) fast.advance();
        const top = topNgramShare(w, plain);
        const dup = duplicateNgramShare(w, plain);
        if (fast.count === 0 || fast.candidates === 0) {
          expect([top, dup]).toEqual([0, 0]);
          continue;
        }
        // Either share may be asked first at an n (the filter asks one of them).
        if ((t + n) % 2) expect([fast.topShare(), fast.duplicateShare()]).toEqual([top, dup]);
        else expect([fast.duplicateShare(), fast.topShare()]).toEqual([dup, top]);
      }
    }
  });
});

describe('normalize leaves alone the ASCII lines that collapsing would not change', () => {
  it('collapseAsciiLine is collapseLine on fuzzed printable ASCII lines', () => {
    const r = rng(3);
    const alphabet = [' ', ' ', ' ', 'a', 'b', '.', '~', '!', '  '];
    for (let i = 0; i < 100000; i++) {
      let line = '';
      const len = Math.floor(r() * 10);
      for (let k = 0; k < len; k++) line += alphabet[Math.floor(r() * alphabet.length)];
      expect(collapseAsciiLine(line), JSON.stringify(line)).toBe(collapseLine(line));
    }
  });
});

describe('LowerCasePhrases lower-cases only texts that may contain a phrase', () => {
  it('finds every phrase that text.toLowerCase().includes finds (fuzzed texts with İ, Σ, K, ſ and mixed case)', () => {
    const phrases = ['javascript', 'privacy policy', 'lorem ipsum', 'hi', 'kelvin', 'σς', 'ss', 'i̇', 'cookie政策'];
    const search = new LowerCasePhrases(phrases);
    const pieces = [
      'JavaScript',
      'JAVASCRİPT',
      'Privacy Policy',
      'LOREM',
      'IPSUM',
      'lorem',
      'H',
      'İ',
      'I',
      'ı',
      'K',
      'ELVIN',
      'ΣΣ',
      'Σ',
      'ς',
      'ſ',
      'S',
      'ß',
      'COOKIE',
      '政策',
      ' ',
      '\n',
      'x',
    ];
    const r = rng(11);
    let found = 0;
    for (let i = 0; i < 20000; i++) {
      const n = 1 + Math.floor(r() * 8);
      let text = '';
      for (let k = 0; k < n; k++) text += pieces[Math.floor(r() * pieces.length)];
      const lower = search.lowerIfAny(text);
      for (const p of phrases) {
        const expected = text.toLowerCase().includes(p);
        if (expected) found++;
        expect([text, p, lower.includes(p)]).toEqual([text, p, expected]);
      }
    }
    expect(found).toBeGreaterThan(2000);
  });
});
