import { describe, expect, it } from 'vitest';
import { passAtK } from './pass-at-k.js';

function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

/** 1 - C(n-c, k) / C(n, k) in exact integers, then one division. */
function closedForm(n: number, c: number, k: number): number {
  const all = choose(n, k);
  const none = choose(n - c, k);
  const scale = 10n ** 15n;
  return Number(((all - none) * scale) / all) / 1e15;
}

describe('passAtK', () => {
  const table: [number, number, number][] = [
    [1, 0, 1],
    [1, 1, 1],
    [5, 0, 1],
    [5, 5, 5],
    [10, 3, 1],
    [10, 3, 5],
    [10, 3, 10],
    [20, 1, 10],
    [20, 19, 1],
    [100, 37, 1],
    [100, 37, 10],
    [100, 37, 100],
    [200, 5, 10],
    [200, 150, 100],
    [50, 49, 2],
    [7, 2, 6],
  ];
  it.each(table)('n=%i c=%i k=%i matches 1 - C(n-c,k)/C(n,k)', (n, c, k) => {
    expect(passAtK(n, c, k)).toBeCloseTo(closedForm(n, c, k), 12);
  });
  it('is c/n for k = 1', () => {
    expect(passAtK(10, 3, 1)).toBeCloseTo(0.3, 12);
  });
  it('refuses k > n and impossible counts', () => {
    expect(() => passAtK(5, 1, 10)).toThrow(/pass@10 needs at least 10 completions/);
    expect(() => passAtK(5, 6, 1)).toThrow(/0 <= c <= n/);
    expect(() => passAtK(5, 1, 0)).toThrow(/k >= 1/);
  });
});
