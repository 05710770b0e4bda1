import { describe, expect, it } from 'vitest';
import { scoreYuanGsm8k } from '../yuan/gsm8k-score.js';
import { extractYuanCloze, mathClozeEqual } from '../yuan/math-compare.js';
import { clozeMatches } from './cloze.js';
import { extractNumericAnswer, normalizeNumber, sameNumber } from './number.js';

// Real-looking endings of math completions and the number a grader must read from each (issue 13, case 7).
const CASES: [string, string][] = [
  // the two reported cases (gold 70000)
  ['So the total is \\boxed{70{,}000}.', '70000'],
  ['The answer is $70{,}000.', '70000'],
  // LaTeX and typographic thousands separators
  ['Therefore the house costs $\\boxed{\\$70{,}000}$', '70000'],
  ['He earns $70\\,000$ dollars a year. The answer is $70\\,000$.', '70000'],
  ['The final answer is $1,\\!250$.', '1250'],
  ['Total: $12\\ 345$ apples, so the answer is 12\\ 345', '12345'],
  ['Their combined savings are 70\u2009000 yuan.', '70000'],
  ['The answer is 1\u202f234\u202f567.', '1234567'],
  ['The answer is 70\u00a0000', '70000'],
  ['\\boxed{1{,}234{,}567}', '1234567'],
  ['#### 70,000', '70000'],
  ['She needs 3 boxes.\n#### 1{,}018', '1018'],
  // units in \text{} and \mathrm{}, after the number
  ['The distance is \\boxed{12\\text{ km}}', '12'],
  ['\\boxed{45 \\mathrm{kg}}', '45'],
  ['The answer is 15 \\text{ apples}.', '15'],
  ['So each ticket costs $\\boxed{\\text{\\$}18}$.', '18'],
  ['\\boxed{\\text{18 dollars}}', '18'],
  ['She walked 3 miles, then 4 more, so 7 miles in all.', '7'],
  // fractions
  ['\\boxed{\\dfrac{3}{4}}', '0.75'],
  ['The answer is $\\frac{1}{2}$.', '0.5'],
  ['The fraction left is \\tfrac{5}{8}', '0.625'],
  ['\\boxed{\\frac12}', '0.5'],
  ['\\boxed{2\\frac{1}{2}}', '2.5'],
  ['\\boxed{-\\frac{3}{2}}', '-1.5'],
  ['The answer is 3/4.', '0.75'],
  ['\\boxed{\\dfrac{\\text{120}}{4}}', '30'],
  // percent
  ['The discount is $\\boxed{50\\%}$', '50'],
  ['So the answer is 50%.', '50'],
  ['The answer is 12.5\\%', '12.5'],
  // currency
  ['The answer is \\$1,250.', '1250'],
  ['She pays $1,200 in total. The answer is $1,250. Check: 3', '1250'],
  ['答案是 ¥36', '36'],
  ['所以一共需要 36 元。\n答案：36元', '36'],
  ['答：小明一共有1,200元。', '1200'],
  ['The answer is US$ 15.', '15'],
  ['€20 per day for 3 days is €60.', '60'],
  // negative numbers and decimals
  ['\\boxed{-5}', '-5'],
  ['The temperature dropped to −12 degrees. The answer is −12.', '-12'],
  ['The answer is -$5.', '-5'],
  ['The change is 10-4 = 6.', '6'],
  ['The answer is 3.75.', '3.75'],
  ['It costs $.50 each, so the answer is .5', '0.5'],
  ['\\boxed{0.125}', '0.125'],
  ['The answer is 18.00', '18'],
  // nested braces in \boxed, spacing, several boxes, markdown
  ['First \\boxed{3}, but correcting: \\boxed{{\\bf 70{,}000}}', '70000'],
  ['\\boxed {42}', '42'],
  ['\\fbox{9}', '9'],
  ['**Final answer:** **18**', '18'],
  ['The final answer is: $\\boxed{5}$ apples', '5'],
  ['Answer: 3 + 4 = 7', '7'],
  ['The answer is 5 + 3 = 8 marbles', '8'],
  // lists and full-width forms
  ['The numbers are 1,2,3', '3'],
  ['答案是３６', '36'],
  ['The answer is 12 \\left( \\text{cookies} \\right)', '12'],
];

describe('numeric answers written in LaTeX and typographic forms', () => {
  it.each(CASES)('%j → %s', (completion, expected) => {
    const got = extractNumericAnswer(completion);
    expect(got).not.toBeNull();
    expect(sameNumber(got, expected), `extracted ${got}`).toBe(true);
  });

  it('reads gold answers and cloze parts in the same forms', () => {
    expect(normalizeNumber('70{,}000')).toBe('70000');
    expect(normalizeNumber('70\u2009000')).toBe('70000');
    expect(normalizeNumber('\\$1,250.')).toBe('1250');
    expect(normalizeNumber('50\\%')).toBe('50');
    expect(normalizeNumber('\\dfrac{3}{4}')).toBe('0.75');
    expect(normalizeNumber('36元')).toBe('36');
    expect(normalizeNumber('five')).toBeNull();
    expect(normalizeNumber('1, 2')).toBeNull();
    expect(clozeMatches('70{,}000', '70000')).toBe(true);
    expect(clozeMatches('\\frac{1}{2}', '0.5')).toBe(true);
  });

  it('the YUAN-protocol scorers read the same separators', () => {
    for (const c of ['所以总价是\\boxed{70{,}000}', '总价为70{,}000元', '总价 = 70\u2009000', '总价 = 70\u202f000']) {
      expect(scoreYuanGsm8k(c, '70000').correct, c).toBe(true);
    }
    expect(mathClozeEqual('70{,}000', '70000')).toBe(true);
    expect(extractYuanCloze('故答案为 \\boxed {12}')).toBe('12');
  });
});
