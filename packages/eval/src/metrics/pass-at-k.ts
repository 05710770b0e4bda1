import { ConfigError } from '@yuan/core';

/**
 * The unbiased pass@k estimator: the chance that at least one of k completions drawn without replacement from n, of
 * which c pass, passes, i.e. 1 - C(n-c, k) / C(n, k), computed as a stable product. Defined only for k <= n.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || k < 1 || c < 0 || c > n) {
    throw new ConfigError(`pass@k needs integers n >= 1, 0 <= c <= n, k >= 1 (got n=${n}, c=${c}, k=${k})`);
  }
  if (k > n)
    throw new ConfigError(`pass@${k} needs at least ${k} completions per task (got n=${n}); raise --n or lower --k`);
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}
