import { describe, expect, it } from 'vitest';
import { majorityAtK, majorityVote } from './majority.js';

describe('majority vote', () => {
  it('picks the most frequent answer and ignores nulls', () => {
    expect(majorityVote(['3', null, '5', '5', null, null])).toBe('5');
    expect(majorityVote([null, null])).toBeNull();
  });
  it('breaks ties by first appearance', () => {
    expect(majorityVote(['7', '8', '8', '7'])).toBe('7');
    expect(majorityVote(['8', '7', '7', '8'])).toBe('8');
  });
  it('takes the first k samples only', () => {
    const answers = ['1', '2', '2', '1', '1', '1'];
    expect(majorityAtK(answers, 1)).toBe('1');
    expect(majorityAtK(answers, 3)).toBe('2');
    expect(majorityAtK(answers, 6)).toBe('1');
  });
});
