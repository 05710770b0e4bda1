import { describe, expect, it } from 'vitest';
import { extractChoice } from './choice.js';
import { clozeMatches, extractCloze } from './cloze.js';
import { extractNumericAnswer, gsm8kGold, normalizeNumber } from './number.js';

describe('numeric answers', () => {
  it('normalises commas, dollars and trailing zeros', () => {
    expect(normalizeNumber('$1,234.50')).toBe('1234.5');
    expect(normalizeNumber('18.')).toBe('18');
    expect(normalizeNumber('-0')).toBe('0');
    expect(normalizeNumber('abc')).toBeNull();
  });
  it('reads the gold after ####', () => {
    expect(gsm8kGold('so 9 * 2 = 18\n#### 1,018')).toBe('1018');
    expect(gsm8kGold('no marker')).toBeNull();
  });
  it('prefers boxed, then "the answer is", then ####, then the last number', () => {
    expect(extractNumericAnswer('3 + 4 = 7, so \\boxed{7} and later 12')).toBe('7');
    expect(extractNumericAnswer('She pays $1,200 in total. The answer is $1,250. Check: 3')).toBe('1250');
    expect(extractNumericAnswer('work 5 6\n#### 42\nextra 99')).toBe('42');
    expect(extractNumericAnswer('first 3 then 4 and finally 5.')).toBe('5');
    expect(extractNumericAnswer('答案是 36')).toBe('36');
    expect(extractNumericAnswer('no digits here')).toBeNull();
  });
});

describe('choices and cloze', () => {
  it('extracts letters after cues, leading letters and lone letters', () => {
    expect(extractChoice('解析……故选D')).toEqual(['D']);
    expect(extractChoice('The answer is (B).')).toEqual(['B']);
    expect(extractChoice('C. because it is larger')).toEqual(['C']);
    expect(extractChoice('答案：AD')).toEqual(['A', 'D']);
    expect(extractChoice('I think it is E', 'ABCD')).toEqual([]);
    expect(extractChoice('nothing useful')).toEqual([]);
  });
  it('matches cloze answers blank by blank', () => {
    expect(clozeMatches('5;10', '$5$;$10$')).toBe(true);
    expect(clozeMatches('5', '$5$;$10$')).toBe(false);
    expect(clozeMatches('\\frac{1}{2}', '$\\dfrac{1}{2}$')).toBe(true);
    expect(clozeMatches('2.0', '2')).toBe(true);
    expect(extractCloze('we get \\boxed{-3} finally')).toBe('-3');
    expect(extractCloze('steps\nThe answer is 12')).toBe('12');
  });
});
