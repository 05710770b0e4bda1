import { YuanError } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from './bytes.js';

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();

  it('has 264 ids and the YUAN special ids', () => {
    expect(tok.name).toBe('bytes');
    expect(tok.vocabSize).toBe(264);
    expect(tok.special).toEqual({ eod: 256, sep: 257, pad: 258 });
  });

  it('round-trips ASCII, Chinese, emoji and control characters byte by byte', () => {
    for (const text of ['Hello, world!', '详细分析并求解以下数学问题。', 'emoji 🙂👍🏽 ok', '\u0000\t\n\u007f', '']) {
      const ids = tok.encode(text);
      expect(ids).toEqual([...new TextEncoder().encode(text)]);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode('hé')).toEqual([104, 0xc3, 0xa9]);
  });

  it('matches special-token strings as single ids', () => {
    const text = 'a<eod>b<sep><pad><FIM_PREFIX>x<FIM_MIDDLE>y<FIM_SUFFIX>z<mask><predict>中';
    const ids = tok.encode(text);
    expect(ids).toEqual([97, 256, 98, 257, 258, 259, 120, 260, 121, 261, 122, 262, 263, 0xe4, 0xb8, 0xad]);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.encode('<eod')).toEqual([...new TextEncoder().encode('<eod')]);
  });

  it('decodes invalid UTF-8 with replacement characters', () => {
    expect(tok.decode([0xff, 104, 0xc3])).toBe('\uFFFDh\uFFFD');
    expect(tok.decode([0xe4, 0xb8, 256, 0xad])).toBe('\uFFFD<eod>\uFFFD');
  });

  it('shows printable pieces', () => {
    expect(tok.pieces(tok.encode('a b\n<eod>é'))).toEqual(['a', '\u2581', 'b', '<0x0A>', '<eod>', '<0xC3>', '<0xA9>']);
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([264])).toThrow(YuanError);
    expect(() => tok.pieces([-1])).toThrow(/out of range/);
    expect(() => tok.decode([1.5])).toThrow(/out of range/);
  });
});
