import { YuanError, type PluginRegistry } from '@yuan/core';
import type { Instruction, ScheduleOptions } from './instructions.js';
import { planRegistry } from './own.js';
import type { SchedulePlugin } from './plugins.js';

/** Checks P, M and the stage index; throws a one-line YuanError naming the bad value. */
export function checkScheduleOptions(o: ScheduleOptions): void {
  if (!Number.isInteger(o.stages) || o.stages < 1)
    throw new YuanError('pipeline', `pipeline stages must be an integer >= 1 (got ${o.stages})`);
  if (!Number.isInteger(o.microbatches) || o.microbatches < 1) {
    throw new YuanError('pipeline', `micro-batches must be an integer >= 1 (got ${o.microbatches})`);
  }
  if (!Number.isInteger(o.stage) || o.stage < 0 || o.stage >= o.stages) {
    throw new YuanError('pipeline', `stage ${o.stage} is outside 0..${o.stages - 1}`);
  }
}

/** Per-stage building blocks shared by the schedules. */
function stageOps(o: ScheduleOptions) {
  const first = o.stage === 0;
  const last = o.stage === o.stages - 1;
  const forward = (mb: number): Instruction[] => [
    ...(first || last ? [{ op: 'load', microbatch: mb, inputs: first, targets: last } as Instruction] : []),
    ...(first ? [] : [{ op: 'recvActivation', microbatch: mb, from: o.stage - 1 } as Instruction]),
    { op: 'forward', microbatch: mb },
    ...(last ? [] : [{ op: 'sendActivation', microbatch: mb, to: o.stage + 1 } as Instruction]),
  ];
  const backward = (mb: number): Instruction[] => [
    ...(last ? [] : [{ op: 'recvGradient', microbatch: mb, from: o.stage + 1 } as Instruction]),
    { op: 'backward', microbatch: mb },
    ...(first ? [] : [{ op: 'sendGradient', microbatch: mb, to: o.stage - 1 } as Instruction]),
  ];
  const finish: Instruction[] = [
    ...((o.tiedEmbeddings ?? true) && o.stages > 1 && (first || last)
      ? [{ op: 'reduceTiedGradients', stages: [0, o.stages - 1] } as Instruction]
      : []),
    { op: 'optimizerStep' },
  ];
  return { forward, backward, finish };
}

/** GPipe: all M forwards, then all M backwards (in order); every stage holds all M micro-batches' activations. */
export const gpipeSchedule: SchedulePlugin = {
  kind: 'schedule',
  name: 'gpipe',
  description: 'GPipe: all forwards then all backwards; each stage holds M micro-batches (Huang et al. 2019)',
  defaults: {},
  instructions(o) {
    checkScheduleOptions(o);
    const { forward, backward, finish } = stageOps(o);
    const out: Instruction[] = [];
    for (let mb = 0; mb < o.microbatches; mb++) out.push(...forward(mb));
    for (let mb = 0; mb < o.microbatches; mb++) out.push(...backward(mb));
    return [...out, ...finish];
  },
  inFlight: (_stage, _stages, microbatches) => microbatches,
};

/**
 * 1F1B (PipeDream-flush, Megatron's `forward_backward_pipelining_without_interleaving`): stage i runs
 * min(P − i − 1, M) warm-up forwards, then alternates one forward and one backward, then drains the remaining
 * backwards; it holds at most min(M, P − i) micro-batches.
 */
export const oneFOneBSchedule: SchedulePlugin = {
  kind: 'schedule',
  name: '1f1b',
  description:
    '1F1B: warm-up min(P - stage - 1, M) forwards, then one forward one backward; stage i holds min(M, P - i)',
  defaults: {},
  instructions(o) {
    checkScheduleOptions(o);
    const { forward, backward, finish } = stageOps(o);
    const warmup = Math.min(o.stages - o.stage - 1, o.microbatches);
    const steady = o.microbatches - warmup;
    const out: Instruction[] = [];
    for (let mb = 0; mb < warmup; mb++) out.push(...forward(mb));
    for (let i = 0; i < steady; i++) {
      out.push(...forward(warmup + i));
      out.push(...backward(i));
    }
    for (let mb = steady; mb < o.microbatches; mb++) out.push(...backward(mb));
    return [...out, ...finish];
  },
  inFlight: (stage, stages, microbatches) => Math.min(microbatches, stages - stage),
};

/**
 * The schedule of that name in `registry` (kind `schedule`; default: a registry of this package's schedules, `gpipe`
 * and `1f1b`); an unknown name lists the registered ones.
 */
export function getSchedule(name: string, registry: PluginRegistry = planRegistry()): SchedulePlugin {
  if (!registry.has('schedule', name)) {
    const known = registry.names('schedule');
    throw new YuanError(
      'not-found',
      `unknown schedule "${name}" (registered: ${known.length ? known.join(', ') : 'none'})`,
    );
  }
  return registry.get('schedule', name);
}

/**
 * The instruction list of one stage under the named schedule (`gpipe`, `1f1b` or another in `registry`, see `getSchedule`). Throws a
 * one-line error for an unknown schedule, P < 1, M < 1 or a stage outside 0..P−1.
 */
export function buildSchedule(name: string, options: ScheduleOptions, registry?: PluginRegistry): Instruction[] {
  checkScheduleOptions(options);
  return getSchedule(name, registry).instructions(options);
}

/** What executing all stages' lists together gave. Times are in units of the forward/backward costs given. */
export interface SimulationResult {
  /** Per stage: the most micro-batches forwarded and not yet backwarded at once. */
  maxInFlight: number[];
  /** Per stage: instructions executed. */
  executed: number[];
  /** Time the last stage to finish finished. */
  makespan: number;
  /** Per stage: time spent in forward and backward. */
  busy: number[];
  /** Per stage: (makespan − busy) / makespan, the pipeline bubble as seen by that stage. */
  idleFraction: number[];
}

/**
 * Executes every stage's instruction list together: sends are buffered per (from, to, kind) channel in order,
 * receives block until the matching send and must find the micro-batch they expect at the head of the channel, the
 * tied-gradient reduction waits for all its stages. Checks that each stage forwards every micro-batch once before
 * its backward, backwards each once, and leaves no message unreceived. Throws a one-line YuanError (code
 * `schedule`) naming the stage and instruction on a deadlock or any violation. Forward takes `forwardCost` time
 * units and backward `backwardCost` (default 1 and 2, as a backward is about twice a forward).
 */
export function simulateSchedule(
  lists: readonly (readonly Instruction[])[],
  costs: { forwardCost?: number; backwardCost?: number } = {},
): SimulationResult {
  const fc = costs.forwardCost ?? 1;
  const bc = costs.backwardCost ?? 2;
  const P = lists.length;
  const pc = new Array<number>(P).fill(0);
  const clock = new Array<number>(P).fill(0);
  const busy = new Array<number>(P).fill(0);
  const maxInFlight = new Array<number>(P).fill(0);
  const state = lists.map(() => ({
    forwarded: new Set<number>(),
    backwarded: new Set<number>(),
    haveInput: new Set<number>(),
    haveGrad: new Set<number>(),
    loadedTargets: new Set<number>(),
  }));
  const channels = new Map<string, { microbatch: number; time: number }[]>();
  const key = (kind: string, from: number, to: number) => `${kind}:${from}->${to}`;
  const fail = (s: number, what: string): never => {
    throw new YuanError('schedule', `stage ${s}, instruction ${pc[s]} (${describe(lists[s][pc[s]])}): ${what}`);
  };
  const atCollective = new Map<string, Set<number>>();

  const tryStep = (s: number): boolean => {
    const ins = lists[s][pc[s]];
    const st = state[s];
    const last = s === P - 1;
    switch (ins.op) {
      case 'load':
        if (ins.inputs) st.haveInput.add(ins.microbatch);
        if (ins.targets) st.loadedTargets.add(ins.microbatch);
        break;
      case 'recvActivation':
      case 'recvGradient': {
        if (ins.from < 0 || ins.from >= P) fail(s, `receives from stage ${ins.from}, which does not exist`);
        const q = channels.get(key(ins.op === 'recvActivation' ? 'act' : 'grad', ins.from, s));
        if (!q || q.length === 0) return false; // blocked
        const msg = q.shift()!;
        if (msg.microbatch !== ins.microbatch)
          fail(s, `expected micro-batch ${ins.microbatch} but stage ${ins.from} sent ${msg.microbatch} first`);
        clock[s] = Math.max(clock[s], msg.time);
        (ins.op === 'recvActivation' ? st.haveInput : st.haveGrad).add(ins.microbatch);
        break;
      }
      case 'sendActivation':
      case 'sendGradient': {
        if (ins.to < 0 || ins.to >= P || ins.to === s) fail(s, `sends to stage ${ins.to}, which is not another stage`);
        const ready =
          ins.op === 'sendActivation' ? st.forwarded.has(ins.microbatch) : st.backwarded.has(ins.microbatch);
        if (!ready) fail(s, `sends a ${ins.op === 'sendActivation' ? 'activation' : 'gradient'} it has not computed`);
        const k = key(ins.op === 'sendActivation' ? 'act' : 'grad', s, ins.to);
        if (!channels.has(k)) channels.set(k, []);
        channels.get(k)!.push({ microbatch: ins.microbatch, time: clock[s] });
        break;
      }
      case 'forward':
        if (!st.haveInput.has(ins.microbatch)) fail(s, 'forward without its input (load or recvActivation)');
        if (st.forwarded.has(ins.microbatch)) fail(s, 'forwards a micro-batch twice');
        if (last && !st.loadedTargets.has(ins.microbatch))
          fail(s, 'the last stage forwards without the targets loaded');
        st.forwarded.add(ins.microbatch);
        clock[s] += fc;
        busy[s] += fc;
        maxInFlight[s] = Math.max(maxInFlight[s], st.forwarded.size - st.backwarded.size);
        break;
      case 'backward':
        if (!st.forwarded.has(ins.microbatch)) fail(s, 'backward before its forward');
        if (st.backwarded.has(ins.microbatch)) fail(s, 'backwards a micro-batch twice');
        if (!last && !st.haveGrad.has(ins.microbatch)) fail(s, 'backward without the output gradient (recvGradient)');
        st.backwarded.add(ins.microbatch);
        clock[s] += bc;
        busy[s] += bc;
        break;
      case 'reduceTiedGradients': {
        const members = [...new Set(ins.stages)].sort((a, b) => a - b);
        if (!members.includes(s)) fail(s, 'runs a tied-gradient reduction it is not part of');
        const id = members.join(',');
        if (st.backwarded.size !== st.forwarded.size) fail(s, 'reduces tied gradients before all its backwards');
        const here = atCollective.get(id) ?? new Set<number>();
        atCollective.set(id, here.add(s));
        if (here.size < members.length) return false; // wait for the others
        const t = Math.max(...members.map((m) => clock[m]));
        for (const m of members) {
          clock[m] = t;
          if (m !== s) pc[m]++; // release the waiting members
        }
        atCollective.delete(id);
        break;
      }
      case 'optimizerStep':
        if (st.backwarded.size !== st.forwarded.size) fail(s, 'optimizer step before all its backwards');
        break;
    }
    pc[s]++;
    return true;
  };

  for (;;) {
    let progressed = false;
    let done = true;
    for (let s = 0; s < P; s++) {
      while (pc[s] < lists[s].length) {
        done = false;
        const ins = lists[s][pc[s]];
        // a stage already counted at a collective stays parked until the last member arrives
        if (
          ins.op === 'reduceTiedGradients' &&
          atCollective.get([...new Set(ins.stages)].sort((a, b) => a - b).join(','))?.has(s)
        )
          break;
        if (!tryStep(s)) break;
        progressed = true;
      }
    }
    if (done || lists.every((l, s) => pc[s] >= l.length)) break;
    if (!progressed) {
      const blocked = lists
        .map((l, s) => (pc[s] < l.length ? `stage ${s} at ${describe(l[pc[s]])}` : undefined))
        .filter(Boolean);
      throw new YuanError('schedule', `deadlock: ${blocked.join('; ')}`);
    }
  }
  for (const [k, q] of channels)
    if (q.length)
      throw new YuanError(
        'schedule',
        `unreceived message(s) on ${k}: micro-batch ${q.map((m) => m.microbatch).join(', ')}`,
      );
  state.forEach((st, s) => {
    if (st.forwarded.size !== st.backwarded.size)
      throw new YuanError(
        'schedule',
        `stage ${s} forwarded ${st.forwarded.size} micro-batches but backwarded ${st.backwarded.size}`,
      );
  });
  const makespan = Math.max(...clock);
  return {
    maxInFlight,
    executed: pc.slice(),
    makespan,
    busy,
    idleFraction: busy.map((b) => (makespan > 0 ? (makespan - b) / makespan : 0)),
  };
}

function describe(ins: Instruction | undefined): string {
  if (!ins) return 'end';
  const { op, ...rest } = ins;
  const args = Object.entries(rest).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`);
  return `${op}${args.length ? ` ${args.join(' ')}` : ''}`;
}
