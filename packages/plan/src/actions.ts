import { YuanError } from '@yuan/core';
import type { Instruction } from './instructions.js';

/**
 * A compute action's kind, as PyTorch's `torch.distributed.pipelining` writes it: `F` forward, `B` full backward,
 * `I` backward for the stage's input, `W` backward for its weights.
 */
export type ActionType = 'F' | 'B' | 'I' | 'W';

/** One compute action of a rank: pass `type` of (virtual) stage `stage` on micro-batch `microbatch`. */
export interface Action {
  stage: number;
  type: ActionType;
  microbatch: number;
}

/**
 * The compute actions of every rank for one step and where the stages live: what a schedule generator produces before
 * the communication is added (`lowerActions`). `placement[v]` is the rank holding virtual stage v (length V ≥ P).
 */
export interface ScheduleActions {
  ranks: Action[][];
  placement: number[];
}

/** `2F0`: stage, type, micro-batch, as PyTorch's `_Action.__repr__` writes a compute action. */
export function formatAction(a: Action): string {
  return `${a.stage}${a.type}${a.microbatch}`;
}

/** Parses `2F0`, `1I3`, `0W1`, `3B2`; anything else is a one-line YuanError naming the string. */
export function parseAction(s: string): Action {
  const m = /^(\d+)([FBIW])(\d+)$/.exec(s.trim());
  if (!m) throw new YuanError('schedule', `bad action "${s}" (expected <stage><F|B|I|W><micro-batch>, e.g. 2F0)`);
  return { stage: Number(m[1]), type: m[2] as ActionType, microbatch: Number(m[3]) };
}

/** One line per rank, its actions separated by spaces (`0F0 0F1 0B0 …`). */
export function formatActionLists(ranks: readonly (readonly Action[])[]): string {
  return ranks.map((r) => r.map(formatAction).join(' ')).join('\n');
}

/** The reverse of `formatActionLists` (blank lines are ranks without actions; errors as `parseAction`). */
export function parseActionLists(text: string): Action[][] {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => line.split(/\s+/).filter(Boolean).map(parseAction));
}

const COMPUTE: Partial<Record<Instruction['op'], ActionType>> = {
  forward: 'F',
  backward: 'B',
  backwardInput: 'I',
  backwardWeight: 'W',
};

/** The compute actions of rank `rank`'s instruction list, in order (an instruction without `stage` works on stage `rank`). */
export function actionsOf(list: readonly Instruction[], rank: number): Action[] {
  const out: Action[] = [];
  for (const ins of list) {
    const type = COMPUTE[ins.op];
    if (type) {
      const i = ins as { microbatch: number; stage?: number };
      out.push({ stage: i.stage ?? rank, type, microbatch: i.microbatch });
    }
  }
  return out;
}

/**
 * Rank `rank`'s instruction list from the compute actions of all ranks: each forward of virtual stage v is preceded by
 * a `load` (v = 0: inputs; v = V−1: targets) or a `recvActivation` from the rank of stage v − 1 and followed by a
 * `sendActivation` to the rank of v + 1; each `B`/`I` is preceded by a `recvGradient` (v < V − 1) and followed by a
 * `sendGradient` (v > 0); neighbours on the same rank pass their tensors locally (no message). The list ends with
 * the tied-gradient reduction between the ranks of stage 0 and V − 1 (when `tied` and V > 1) and the optimizer step.
 * With one stage per rank (`placement[v] = v`) the instructions carry no `stage` field, as the single-stage
 * schedules always wrote them. Errors: a placement that is not a list of ranks 0..P−1 covering every rank, an action
 * on a stage the rank does not hold.
 */
export function lowerActions(actions: ScheduleActions, rank: number, tied = true): Instruction[] {
  const { placement } = actions;
  const P = actions.ranks.length;
  const V = placement.length;
  if (V < P || placement.some((r) => !Number.isInteger(r) || r < 0 || r >= P) || new Set(placement).size !== P) {
    throw new YuanError(
      'schedule',
      `placement [${placement.join(', ')}] does not map ${V} stages onto ranks 0..${P - 1}`,
    );
  }
  const single = V === P && placement.every((r, v) => r === v);
  const tag = (v: number) => (single ? {} : { stage: v });
  const out: Instruction[] = [];
  for (const a of actions.ranks[rank]) {
    const v = a.stage;
    const mb = a.microbatch;
    if (placement[v] !== rank) {
      throw new YuanError(
        'schedule',
        `rank ${rank} has action ${formatAction(a)} but stage ${v} is on rank ${placement[v]}`,
      );
    }
    const prev = v > 0 && placement[v - 1] !== rank ? placement[v - 1] : undefined;
    const next = v < V - 1 && placement[v + 1] !== rank ? placement[v + 1] : undefined;
    if (a.type === 'F') {
      if (v === 0 || v === V - 1)
        out.push({ op: 'load', microbatch: mb, inputs: v === 0, targets: v === V - 1, ...tag(v) });
      if (prev !== undefined) out.push({ op: 'recvActivation', microbatch: mb, from: prev, ...tag(v) });
      out.push({ op: 'forward', microbatch: mb, ...tag(v) });
      if (next !== undefined) out.push({ op: 'sendActivation', microbatch: mb, to: next, ...tag(v) });
    } else if (a.type === 'B' || a.type === 'I') {
      if (next !== undefined) out.push({ op: 'recvGradient', microbatch: mb, from: next, ...tag(v) });
      out.push({ op: a.type === 'B' ? 'backward' : 'backwardInput', microbatch: mb, ...tag(v) });
      if (prev !== undefined) out.push({ op: 'sendGradient', microbatch: mb, to: prev, ...tag(v) });
    } else {
      out.push({ op: 'backwardWeight', microbatch: mb, ...tag(v) });
    }
  }
  const ends = [...new Set([placement[0], placement[V - 1]])].sort((x, y) => x - y);
  if (tied && V > 1 && ends.includes(rank)) out.push({ op: 'reduceTiedGradients', stages: ends });
  out.push({ op: 'optimizerStep' });
  return out;
}
