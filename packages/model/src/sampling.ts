import type { Rng } from '@yuan/core';

/** How the next token is chosen. temperature 0 = greedy (argmax, first index on ties); topK 0 and topP 1 = no filtering. */
export interface SamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
}

/** Picks the next id from one row of logits. */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  if (options.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  if (options.topK > 0) order = order.slice(0, options.topK);
  const max = logits[order[0]];
  let probs = order.map((i) => Math.exp((logits[i] - max) / options.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (options.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && cum < options.topP) cum += probs[keep++];
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, order.length);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  let r = rng.next();
  for (let i = 0; i < order.length; i++) {
    r -= probs[i];
    if (r < 0) return order[i];
  }
  return order[order.length - 1];
}
