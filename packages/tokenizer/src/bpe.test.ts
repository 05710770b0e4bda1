import { describe, expect, it } from 'vitest';
import { makeModel, naiveBpe } from './testing.js';
import { normalizeSp } from './normalize.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import { PieceType, parseSpModel } from './sp-model.js';
import { encodeSpModel } from './sp-writer.js';

const BASE: Array<[string, number, number?]> = [
  ['\u2581', -1e9],
  ['a', -100],
  ['b', -100],
  ['c', -100],
  ['d', -100],
  ['ab', -1],
  ['bc', -1],
  ['abc', -2],
  ['\u2581a', -3],
  ['\u2581ab', -4],
  ['\u2581\u2581', -1e9],
  ['cd', -1],
  ['dd', -5],
  ['ddd', -0.5],
];

describe('SentencePiece BPE on a synthetic model', () => {
  const model = makeModel(BASE);
  const tok = new SentencePieceTokenizer(model, { addedTokens: [] });
  const id = (p: string): number => model.pieces.findIndex((x) => x.piece === p);

  it('survives a proto round trip', () => {
    const back = parseSpModel(encodeSpModel(model));
    expect(back.pieces).toEqual(model.pieces.map((p) => ({ ...p, score: Math.fround(p.score) })));
    expect(back.trainer).toEqual(model.trainer);
    expect(back.normalizer).toEqual(model.normalizer);
  });

  it('merges by score, leftmost first on ties', () => {
    // ab and bc tie at -1: the left pair wins, then abc (-2) is formed
    expect(tok.pieces(tok.encode('abc'))).toEqual(['\u2581', 'abc']);
    // ▁a (-3) loses to ab (-1); ▁ab (-4) then merges
    expect(tok.pieces(tok.encode('ab'))).toEqual(['\u2581ab']);
    // dd (-5) first candidates, ddd (-0.5) only after a dd exists
    expect(tok.pieces(tok.encode('dddd'))).toEqual(['\u2581', 'ddd', 'd']);
  });

  it('falls back to bytes and decodes them back', () => {
    const ids = tok.encode('a\u00e9!');
    expect(tok.pieces(ids)).toEqual(['\u2581a', '<0xC3>', '<0xA9>', '<0x21>']);
    expect(tok.decode(ids)).toBe('a\u00e9!');
    expect(tok.decode([id('<0xC3>'), id('a'), id('<0xFF>')])).toBe('\uFFFDa\uFFFD');
  });

  it('agrees with a naive BPE on random strings', () => {
    const naive = naiveBpe(model);
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const alphabet = ['a', 'b', 'c', 'd', ' ', ' ', '\n', 'x', '\u00e9', '\u{1F642}'];
    for (let k = 0; k < 300; k++) {
      const text = Array.from({ length: 1 + rnd(40) }, () => alphabet[rnd(alphabet.length)]).join('');
      const expected = naive(normalizeSp(text, { ...model.normalizer, treatWhitespaceAsSuffix: false }));
      expect(tok.encode(text), JSON.stringify(text)).toEqual(expected);
      expect(tok.decode(expected)).toBe(text);
    }
  });

  it('keeps USER_DEFINED pieces whole and unmerged', () => {
    const m = makeModel([...BASE, ['<x>', 0, PieceType.USER_DEFINED], ['b<', 10]]);
    const t = new SentencePieceTokenizer(m, { addedTokens: [] });
    expect(t.pieces(t.encode('ab<x>c'))).toEqual(['\u2581ab', '<x>', 'c']);
  });

  it('splits UNUSED pieces back into the pieces they were merged from', () => {
    const m = makeModel(
      [
        ['a', -10],
        ['b', -10],
        ['c', -10],
        ['x', -10],
        ['ab', -1, PieceType.UNUSED],
        ['abc', -2],
      ],
      { dummy: false },
    );
    const t = new SentencePieceTokenizer(m, { addedTokens: [] });
    expect(t.pieces(t.encode('abc'))).toEqual(['abc']);
    expect(t.pieces(t.encode('abx'))).toEqual(['a', 'b', 'x']);
  });

  it('without byte fallback reports a run of unknown characters as one <unk>', () => {
    const m = makeModel(BASE, { byteFallback: false });
    const t = new SentencePieceTokenizer(m, { addedTokens: [] });
    expect(t.encode('a\u00e9\u00e8 b')).toEqual([
      m.pieces.findIndex((p) => p.piece === '\u2581a'),
      0,
      m.pieces.findIndex((p) => p.piece === '\u2581'),
      m.pieces.findIndex((p) => p.piece === 'b'),
    ]);
    expect(t.decode(t.encode('a\u00e9'))).toBe('a \u2047 ');
  });

  it('matches added tokens and gives new ones ids after the vocabulary', () => {
    const t = new SentencePieceTokenizer(model, { addedTokens: ['<eod>', 'abc', '<sep>'] });
    expect(t.vocabSize).toBe(model.pieces.length + 2);
    expect(t.special).toEqual({ eod: model.pieces.length, sep: model.pieces.length + 1 });
    const ids = t.encode('ab<eod>abc d');
    // the space after the added token 'abc' is stripped, as transformers 4.30 did
    expect(t.pieces(ids)).toEqual(['\u2581ab', '<eod>', 'abc', '\u2581', 'd']);
    expect(t.decode(ids)).toBe('ab<eod>abcd');
    const keep = new SentencePieceTokenizer(model, {
      addedTokens: ['<eod>', 'abc', '<sep>'],
      stripAroundAddedTokens: false,
    });
    expect(keep.decode(keep.encode('ab<eod>abc d'))).toBe('ab<eod>abc d');
  });

  it('rejects out-of-range ids', () => {
    expect(() => tok.decode([tok.vocabSize])).toThrow(/out of range/);
    expect(() => tok.pieces([-1])).toThrow(/out of range/);
  });
});
