import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rng, type Tokenizer } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from './bytes.js';
import { loadSentencePiece, SentencePieceTokenizer } from './sentencepiece.js';
import { makeModel } from './testing.js';
import { CompletionText } from './completion-text.js';

const fixture = join(resolve(__dirname, '../../..'), '..', 'shared', 'fixtures', 'yuan2-tokenizer', 'tokenizer.model');

/** The definition: decode(prompt ++ generated) minus decode(prompt) (from where the two decodings first differ). */
function expected(tok: Tokenizer, prompt: number[], gen: number[]): string {
  const p = tok.decode(prompt);
  const f = tok.decode([...prompt, ...gen]);
  let i = 0;
  while (i < p.length && i < f.length && p.charCodeAt(i) === f.charCodeAt(i)) i++;
  return f.slice(i);
}

/** Streams `gen` through CompletionText; checks every step emits only final text; returns the whole text. */
function stream(
  tok: Tokenizer,
  prompt: number[],
  gen: number[],
  stops: string[] = [],
): { text: string; stopped: boolean; deltas: string[] } {
  const ct = new CompletionText(tok, prompt, stops);
  const deltas: string[] = [];
  let stopped = false;
  for (const id of gen) {
    const step = ct.push(id);
    deltas.push(step.delta);
    if (step.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) {
    const end = ct.finish();
    deltas.push(end.delta);
    stopped = end.stopped;
  }
  expect(deltas.join('')).toBe(ct.text);
  return { text: ct.text, stopped, deltas };
}

/** Random ids biased towards the hard cases: byte pieces of multi-byte characters, specials, ▁ runs. */
function randomIds(rng: Rng, n: number, pools: number[][]): number[] {
  return Array.from({ length: n }, () => {
    const pool = pools[Math.floor(rng.next() * pools.length)];
    return pool[Math.floor(rng.next() * pool.length)];
  });
}

function checkProperty(tok: Tokenizer, pools: number[][], seed: number, cases: number): void {
  const rng = new Rng(seed);
  for (let c = 0; c < cases; c++) {
    const prompt = randomIds(rng, 1 + Math.floor(rng.next() * 6), pools);
    const gen = randomIds(rng, Math.floor(rng.next() * 12), pools);
    const want = expected(tok, prompt, gen);
    const got = stream(tok, prompt, gen);
    expect(got.text, `prompt ${prompt} gen ${gen}`).toBe(want);
    // no character is emitted before it is complete: every streamed prefix is a prefix of every later complete text
    let soFar = '';
    for (let k = 0; k < got.deltas.length - 1; k++) {
      soFar += got.deltas[k];
      for (let later = k + 1; later <= gen.length; later++)
        expect(
          expected(tok, prompt, gen.slice(0, later)).startsWith(soFar),
          `prompt ${prompt} gen ${gen} step ${k}`,
        ).toBe(true);
    }
  }
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];

describe('CompletionText: the text is decode(prompt + generated) − decode(prompt)', () => {
  const bytes = new ByteTokenizer();
  it('byte tokenizer: emoji bytes join into the emoji, never U+FFFD, while streaming', () => {
    const prompt = bytes.encode('Hi ');
    const r = stream(bytes, prompt, utf8('😀!'));
    expect(r.text).toBe('😀!');
    expect(r.deltas.join('')).not.toContain('\uFFFD');
    expect(r.deltas.slice(0, 3)).toEqual(['', '', '']);
  });

  it('byte tokenizer: property over random ids (multi-byte characters, invalid bytes, specials)', () => {
    const multi = [...new Set([...utf8('é€😀中'), 0x80, 0xff, 0xf0, 0x9f])];
    checkProperty(bytes, [multi, [0x20, 0x41, 0x61, 0x0a], [256, 257, 258]], 1, 400);
  });

  const sp = new SentencePieceTokenizer(
    makeModel([
      ['\u2581', 5],
      ['\u2581\u2581', 4],
      ['\u2581is', 3],
      ['\u2581the', 3],
      ['is', 2],
      ['e', 1],
      ['t', 1],
      ['h', 1],
      ['\u2581t', 2],
      ['中', 1],
    ]),
    { addedTokens: ['<eod>', '<sep>'] },
  );
  const id = (p: string) => sp.pieceToId(p)!;

  it('SentencePiece: a first generated ▁piece keeps its space (decoded in context)', () => {
    const prompt = sp.encode('The answer is');
    const r = stream(sp, prompt, [id('\u2581is'), id('\u2581is'), id('\u2581is')]);
    expect(r.text).toBe(' is is is');
  });

  it('SentencePiece: byte-fallback pieces of an emoji stream as the emoji', () => {
    const prompt = sp.encode('x');
    const r = stream(
      sp,
      prompt,
      [0xf0, 0x9f, 0x98, 0x80].map((b) => id(`<0x${b.toString(16).toUpperCase()}>`)),
    );
    expect(r.text).toBe('😀');
    expect(r.deltas.join('')).not.toContain('\uFFFD');
  });

  it('SentencePiece: property over random ids (byte pieces, multi-byte characters, control and added tokens, ▁ runs)', () => {
    const bytePieces = [...utf8('é😀中'), 0x80, 0xff, 0x41, 0x0a].map((b) =>
      id(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
    );
    const words = ['\u2581', '\u2581\u2581', '\u2581is', '\u2581the', 'is', 'e', '中'].map(id);
    checkProperty(sp, [bytePieces, words, [0, 1, 2, id('<eod>'), id('<sep>')]], 2, 400);
  });

  it.skipIf(!existsSync(fixture))(
    'YUAN 2.0 tokenizer: property over random ids (needs ../shared, which CI has)',
    async () => {
      const yuan = await loadSentencePiece(fixture);
      const rng = new Rng(3);
      const bytePieces = Array.from({ length: 256 }, (_, b) =>
        yuan.pieceToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!,
      );
      const any = Array.from({ length: 200 }, () => Math.floor(rng.next() * yuan.vocabSize));
      const spaces = ['\u2581', '\u2581\u2581', '\u2581\u2581\u2581\u2581']
        .map((p) => yuan.pieceToId(p))
        .filter((x): x is number => x !== undefined);
      checkProperty(
        yuan,
        [
          bytePieces.filter((_, b) => b >= 0x80 || b === 0x20),
          any,
          spaces,
          [yuan.special.eod, yuan.special.sep!, 0, 1, 2],
        ],
        4,
        150,
      );
    },
  );
});

describe('CompletionText: stop strings', () => {
  const bytes = new ByteTokenizer();
  it('cuts exactly at the first occurrence of a stop string that spans tokens, streamed and not', () => {
    const prompt = bytes.encode('ROMEO:\n');
    const r = stream(bytes, prompt, bytes.encode('The the the the'), ['e th']);
    expect(r.text).toBe('Th');
    expect(r.stopped).toBe(true);
  });

  it('holds back text that may become a stop string, and releases it when it does not', () => {
    const ct = new CompletionText(bytes, bytes.encode('p'), ['\ndef ']);
    const deltas = bytes.encode('x\nde').map((i) => ct.push(i).delta);
    expect(deltas.join('')).toBe('x');
    expect(ct.push(bytes.encode('l')[0]).delta).toBe('\ndel');
    const ct2 = new CompletionText(bytes, bytes.encode('p'), ['\ndef ']);
    for (const i of bytes.encode('    return 1\ndef')) ct2.push(i);
    expect(ct2.finish()).toEqual({ delta: '\ndef', stopped: false });
    const ct3 = new CompletionText(bytes, bytes.encode('p'), ['\ndef ']);
    let streamed = '';
    for (const i of bytes.encode('    return 1\ndef f')) {
      const step = ct3.push(i);
      streamed += step.delta;
      if (step.stopped) break;
    }
    expect(streamed).toBe('    return 1');
    expect(ct3.text).toBe('    return 1');
  });

  it('picks the earliest of several stop strings', () => {
    expect(stream(bytes, [65], bytes.encode('abcdef'), ['de', 'bc']).text).toBe('a');
    expect(stream(bytes, [65], bytes.encode('abcdef'), ['zz']).text).toBe('abcdef');
  });

  it('property: streamed text equals the whole text cut at its first stop occurrence', () => {
    const rng = new Rng(9);
    const alphabet = bytes.encode('ab é\n');
    for (let c = 0; c < 300; c++) {
      const gen = randomIds(rng, Math.floor(rng.next() * 20), [alphabet, utf8('😀')]);
      const stops = ['ab', ' \n', 'éé', 'b a', '😀'].filter(() => rng.next() < 0.4);
      const whole = bytes.decode(gen);
      let cut = -1;
      for (let end = 1; end <= gen.length && cut < 0; end++) {
        const t = bytes.decode(gen.slice(0, end)).replace(/\uFFFD+$/, '');
        for (const s of stops) {
          const i = t.indexOf(s);
          if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
      }
      if (cut < 0)
        for (const s of stops) if (whole.includes(s) && (cut < 0 || whole.indexOf(s) < cut)) cut = whole.indexOf(s);
      const r = stream(bytes, [65], gen, stops);
      expect(r.text, `${JSON.stringify(whole)} ${JSON.stringify(stops)}`).toBe(cut < 0 ? whole : whole.slice(0, cut));
    }
  });
});
