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

/**
 * The learning rate of optimizer step `step` (1-based) for a run's `train` settings: `learningRate` with the cosine
 * ending at `train.decaySteps`, or at the run's `totalSteps` when unset. Every engine computes its step's lr here.
 */
export function stepLearningRate(
  train: { lr: number; minLr: number; warmupSteps: number; decaySteps?: number },
  step: number,
  totalSteps: number,
): number {
  return learningRate(step, {
    lr: train.lr,
    minLr: train.minLr,
    warmupSteps: train.warmupSteps,
    decaySteps: train.decaySteps ?? totalSteps,
  });
}
