/** Probability that two documents with Jaccard similarity `s` share at least one LSH bucket. */
export function candidateProbability(s: number, bands: number, rows: number): number {
  return 1 - Math.pow(1 - Math.pow(s, rows), bands);
}

function integrate(f: (s: number) => number, a: number, b: number, steps = 200): number {
  const h = (b - a) / steps;
  let sum = 0;
  for (let i = 0; i < steps; i++) sum += f(a + (i + 0.5) * h);
  return sum * h;
}

/**
 * Bands × rows (bands·rows ≤ numPerm) that minimise the false-positive area below `threshold` plus the
 * false-negative area above it (equal weights), the usual way of deriving LSH parameters from a Jaccard threshold.
 */
export function chooseBands(threshold: number, numPerm: number): { bands: number; rows: number } {
  const key = `${threshold}/${numPerm}`;
  let known = chosen.get(key);
  if (!known) chosen.set(key, (known = searchBands(threshold, numPerm)));
  return { ...known };
}

/**
 * Results of `chooseBands` (a search over every bands × rows, tens of milliseconds): per thread, and the default
 * (0.75, 128 → 11 × 11) from the start, so that a worker thread does not search again (units.test.ts checks it).
 */
const chosen = new Map<string, { bands: number; rows: number }>([['0.75/128', { bands: 11, rows: 11 }]]);

/** The search of `chooseBands`. */
export function searchBands(threshold: number, numPerm: number): { bands: number; rows: number } {
  let best = { bands: 1, rows: numPerm, error: Infinity };
  for (let bands = 1; bands <= numPerm; bands++) {
    for (let rows = 1; bands * rows <= numPerm; rows++) {
      const fp = integrate((s) => candidateProbability(s, bands, rows), 0, threshold);
      const fn = integrate((s) => 1 - candidateProbability(s, bands, rows), threshold, 1);
      const error = 0.5 * fp + 0.5 * fn;
      if (error < best.error - 1e-12) best = { bands, rows, error };
    }
  }
  return { bands: best.bands, rows: best.rows };
}
