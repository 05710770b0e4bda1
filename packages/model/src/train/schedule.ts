/** The learning-rate schedule: linear warmup from 0 to `lr`, then cosine decay to `minLr` at `decaySteps`, then flat. */
export interface LrSchedule {
  lr: number;
  minLr: number;
  warmupSteps: number;
  decaySteps: number;
}

/** The learning rate of optimizer step `step` (1-based, as Megatron counts iterations). */
export function learningRate(step: number, s: LrSchedule): number {
  if (s.warmupSteps > 0 && step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  if (step >= s.decaySteps) return s.minLr;
  const span = Math.max(1, s.decaySteps - s.warmupSteps);
  const progress = (step - s.warmupSteps) / span;
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
