import { YuanError } from '@yuan/core';

/**
 * One instruction of a stage's per-step program (DeepSpeed's `PipeInstruction` stream; Megatron's
 * `forward_backward_pipelining_without_interleaving` written out). `mb` is the micro-batch index 0..M−1.
 */
export type Instruction =
  | { kind: 'loadMicroBatch'; mb: number }
  | { kind: 'recvActivation'; mb: number }
  | { kind: 'forward'; mb: number }
  | { kind: 'sendActivation'; mb: number }
  | { kind: 'recvGradient'; mb: number }
  | { kind: 'backward'; mb: number }
  | { kind: 'sendGradient'; mb: number }
  | { kind: 'reduceTiedGradients' }
  | { kind: 'optimizerStep' };

/** The schedules the runtime interprets. */
export type ScheduleName = 'gpipe' | '1f1b';

/** Names of the schedules, for messages. */
export const SCHEDULES: readonly ScheduleName[] = ['gpipe', '1f1b'];

/** Where a stage sits: `stages` P, `microbatches` M per optimizer step, this `stage` 0..P−1. */
export interface StagePosition {
  stages: number;
  microbatches: number;
  stage: number;
}

function forwardOf(mb: number, p: StagePosition): Instruction[] {
  const out: Instruction[] = [];
  if (p.stage === 0 || p.stage === p.stages - 1) out.push({ kind: 'loadMicroBatch', mb });
  if (p.stage > 0) out.push({ kind: 'recvActivation', mb });
  out.push({ kind: 'forward', mb });
  if (p.stage < p.stages - 1) out.push({ kind: 'sendActivation', mb });
  return out;
}

function backwardOf(mb: number, p: StagePosition): Instruction[] {
  const out: Instruction[] = [];
  if (p.stage < p.stages - 1) out.push({ kind: 'recvGradient', mb });
  out.push({ kind: 'backward', mb });
  if (p.stage > 0) out.push({ kind: 'sendGradient', mb });
  return out;
}

/**
 * The instruction list of one stage for one optimizer step. `gpipe`: all M forwards, then all M backwards.
 * `1f1b`: warm-up of min(P − stage − 1, M) forwards, then one forward / one backward, then the remaining backwards
 * (Megatron `schedules.py`, `forward_backward_pipelining_without_interleaving`). Both end with the tied-embedding
 * gradient reduction (first and last stage, P > 1) and the optimizer step. Backwards run in micro-batch order, so
 * gradients accumulate in the same order as the single-process trainer. Throws on an unknown schedule or bad sizes.
 * (A local generator: the package's plugin schedules replace it at integration.)
 */
export function runtimeSchedule(name: string, p: StagePosition): Instruction[] {
  const { stages, microbatches: m, stage } = p;
  if (!(Number.isInteger(stages) && stages >= 1)) throw new YuanError('usage', `pipeline stages must be a positive integer, got ${stages}`);
  if (!(Number.isInteger(m) && m >= 1)) throw new YuanError('usage', `--microbatches must be at least 1, got ${m}`);
  if (!(Number.isInteger(stage) && stage >= 0 && stage < stages)) throw new YuanError('usage', `stage ${stage} is not one of 0..${stages - 1}`);
  const out: Instruction[] = [];
  if (name === 'gpipe') {
    for (let i = 0; i < m; i++) out.push(...forwardOf(i, p));
    for (let i = 0; i < m; i++) out.push(...backwardOf(i, p));
  } else if (name === '1f1b') {
    const warmup = Math.min(stages - stage - 1, m);
    for (let i = 0; i < warmup; i++) out.push(...forwardOf(i, p));
    for (let i = 0; i < m - warmup; i++) {
      out.push(...forwardOf(warmup + i, p));
      out.push(...backwardOf(i, p));
    }
    for (let i = m - warmup; i < m; i++) out.push(...backwardOf(i, p));
  } else {
    throw new YuanError('usage', `unknown schedule "${name}" (schedules: ${SCHEDULES.join(', ')})`);
  }
  if (stages > 1 && (stage === 0 || stage === stages - 1)) out.push({ kind: 'reduceTiedGradients' });
  out.push({ kind: 'optimizerStep' });
  return out;
}
