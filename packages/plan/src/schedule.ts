import { YuanError, type PluginRegistry } from '@yuan/core';
import { lowerActions, type ScheduleActions } from './actions.js';
import {
  gpipeActions,
  greedyZeroBubbleActions,
  interleavedActions,
  oneFOneBActions,
  zbH1Actions,
  zbvActions,
} from './generators.js';
import type { Instruction, ScheduleOptions } from './instructions.js';
import { costAwareZbvActions } from './zbv-auto.js';
import { planRegistry } from './own.js';
import type { ActionOptions, SchedulePlugin } from './plugins.js';

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

/** The options a generator needs, checked (the rank index is not part of them). */
function checkSizes(o: { stages: number; microbatches: number }): void {
  checkScheduleOptions({ ...o, stage: 0 });
}

/** A schedule plugin whose lists are `lowerActions` of a generator's compute actions (generated once per P, M, costs). */
function actionSchedule(
  name: string,
  description: string,
  chunks: number,
  generate: (P: number, M: number, o: ActionOptions) => ScheduleActions,
  inFlight?: SchedulePlugin['inFlight'],
): SchedulePlugin {
  let cached: { key: string; actions: ScheduleActions } | undefined;
  const actions = (o: ActionOptions): ScheduleActions => {
    checkSizes(o);
    const key = JSON.stringify([o.stages, o.microbatches, o.costs ?? null, o.stageCosts ?? null]);
    if (cached?.key !== key) cached = { key, actions: generate(o.stages, o.microbatches, o) };
    return cached.actions;
  };
  return {
    kind: 'schedule',
    name,
    description,
    defaults: {},
    chunks,
    actions,
    instructions(o) {
      checkScheduleOptions(o);
      return lowerActions(actions(o), o.stage, o.tiedEmbeddings ?? true);
    },
    ...(inFlight ? { inFlight } : {}),
  };
}

/** The bubble of GPipe and 1F1B with D data-parallel pipelines sharing M micro-batches (Narayanan et al. 2021 §2.2). */
const FLUSH_BUBBLE = '(P - 1)/(M/D + P - 1) with B = 2F';

/** GPipe: all forwards then all backwards; every stage holds all M micro-batches' activations. */
export const gpipeSchedule: SchedulePlugin = {
  ...actionSchedule(
    'gpipe',
    'GPipe: all forwards then all backwards; each stage holds M micro-batches (Huang et al. 2019)',
    1,
    (P, M) => gpipeActions(P, M),
    (_stage, _stages, microbatches) => microbatches,
  ),
  bubbleFormula: FLUSH_BUBBLE,
};

/**
 * 1F1B (PipeDream-flush, Megatron's `forward_backward_pipelining_without_interleaving`): stage i runs
 * min(P − i − 1, M) warm-up forwards, then alternates one forward and one backward, then drains the remaining
 * backwards; it holds at most min(M, P − i) micro-batches.
 */
export const oneFOneBSchedule: SchedulePlugin = {
  ...actionSchedule(
    '1f1b',
    '1F1B: warm-up min(P - stage - 1, M) forwards, then one forward one backward; stage i holds min(M, P - i)',
    1,
    (P, M) => oneFOneBActions(P, M),
    (stage, stages, microbatches) => Math.min(microbatches, stages - stage),
  ),
  bubbleFormula: FLUSH_BUBBLE,
};

/** Interleaved 1F1B with two virtual stages per rank (rank r: stages r and r + P); see `interleavedActions`. */
export const interleavedSchedule: SchedulePlugin = actionSchedule(
  'interleaved-1f1b',
  'interleaved 1F1B: 2 virtual stages per rank (r, r + P), depth first in rounds of max(1, M/P) (Narayanan et al. 2021)',
  2,
  (P, M) => interleavedActions(P, M, 2),
);

/** ZB-H1: 1F1B with split backward, rank r's W passes postponed by r micro-batches (peak P held); see `zbH1Actions`. */
export const zbH1Schedule: SchedulePlugin = actionSchedule(
  'zb-h1',
  'ZB-H1: backward split into I and W, rank r postpones its W passes by r, peak activations as 1F1B (P) (Qi et al. 2024)',
  1,
  (P, M) => zbH1Actions(P, M),
);

/** ZB-H2: split backward placed greedily by the pass times, up to 2P − 1 micro-batches held; see `greedyZeroBubbleActions`. */
export const zbH2Schedule: SchedulePlugin = actionSchedule(
  'zb-h2',
  'ZB-H2: backward split into I and W, placed greedily by pass times, up to 2P - 1 micro-batches held (Qi et al. 2024)',
  1,
  (P, M, o) => greedyZeroBubbleActions(P, M, 2 * P - 1, o.costs),
);

/** ZB-V: two virtual stages per rank in a V (rank r: stages r and 2P − 1 − r), split backward; see `zbvActions`. */
export const zbvSchedule: SchedulePlugin = actionSchedule(
  'zb-v',
  'ZB-V: 2 virtual stages per rank in a V (r, 2P - 1 - r), split backward, peak activations as 1F1B (Qi et al. 2024)',
  2,
  (P, M) => zbvActions(P, M),
);

/**
 * Cost-aware ZB-V: the V of `zb-v` with its order built from each virtual stage's F, I, W (`stageCosts`, else
 * `costs` halved per chunk) by a greedy list scheduler, kept only where it simulates shorter than the handcrafted
 * order, at the same in-flight limit (1F1B's peak); see `costAwareZbvActions`.
 */
export const zbvAutoSchedule: SchedulePlugin = actionSchedule(
  'zb-v-auto',
  "ZB-V ordered from each chunk's own F, I, W (greedy list scheduler, the handcrafted order where that is faster), 1F1B's peak memory",
  2,
  (P, M, o) => costAwareZbvActions(P, M, o.stageCosts, o.costs),
);

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

/** Per virtual stage pass times for `simulateSchedule`: one number for every stage or one per stage (length V). */
export interface SimulationCosts {
  /** Forward F (default 1). */
  forwardCost?: number | readonly number[];
  /** Full backward B (default I + W). */
  backwardCost?: number | readonly number[];
  /** Input backward I (default 1). */
  backwardInputCost?: number | readonly number[];
  /** Weight backward W (default 1). */
  backwardWeightCost?: number | readonly number[];
  /**
   * Share of its rank's activation memory a micro-batch of virtual stage v holds (default 1 / the stages on the rank;
   * pass layers(v) / layers(rank) for a non-uniform partition).
   */
  stageWeights?: readonly number[];
  /**
   * What a micro-batch waiting for its weight backward (I done, W not) holds, relative to one waiting for its
   * backward (default 1; 2 when W keeps each layer's output gradient beside its input, as ours does).
   */
  pendingWeightFactor?: number;
}

/** What executing all ranks' lists together gave. Times are in units of the costs given. */
export interface SimulationResult {
  /**
   * Per rank: the most micro-batches held at once — forwarded, weight gradients not yet computed — each virtual stage
   * counted with its `stageWeights` share and a pending W with `pendingWeightFactor` (1F1B: min(M, P − i)).
   */
  maxInFlight: number[];
  /** Per rank: instructions executed. */
  executed: number[];
  /** Time the last rank to finish finished. */
  makespan: number;
  /** Per rank: time spent computing (F, B, I, W). */
  busy: number[];
  /** Per rank: (makespan − busy) / makespan, the pipeline bubble as seen by that rank. */
  idleFraction: number[];
  /** The rank of each virtual stage (length V). */
  placement: number[];
}

type Costs = readonly number[];

function perStage(name: string, v: number | readonly number[] | undefined, V: number, dflt: Costs): Costs {
  if (v === undefined) return dflt;
  const arr = typeof v === 'number' ? new Array<number>(V).fill(v) : v;
  if (arr.length !== V || arr.some((x) => !(Number.isFinite(x) && x >= 0)))
    throw new YuanError('schedule', `${name} must be a number >= 0 or ${V} of them (got ${String(v)})`);
  return arr;
}

/**
 * Executes every rank's instruction list together: sends are buffered per (kind, sending rank, receiving rank,
 * receiving stage) channel in order, receives block until the matching send and must find the micro-batch they
 * expect at the head of the channel, a virtual stage's neighbour on the same rank hands over without a message, the
 * tied-gradient reduction waits for all its ranks. Checks that each stage forwards every micro-batch once before its
 * backward (`B`, or `I` then `W`), and leaves no message unreceived. Throws a one-line YuanError (code `schedule`)
 * naming the rank and instruction on a deadlock or any violation. Times are `costs` (default F = 1, I = W = 1,
 * B = I + W = 2: a backward is about twice a forward); communication is free.
 */
export function simulateSchedule(
  lists: readonly (readonly Instruction[])[],
  costs: SimulationCosts = {},
): SimulationResult {
  const P = lists.length;
  // where each virtual stage lives
  const where = new Map<number, number>();
  lists.forEach((l, r) =>
    l.forEach((ins) => {
      if (!('microbatch' in ins)) return;
      const v = ins.stage ?? r;
      if (!Number.isInteger(v) || v < 0) throw new YuanError('schedule', `rank ${r}: bad stage ${v}`);
      const had = where.get(v);
      if (had !== undefined && had !== r)
        throw new YuanError('schedule', `stage ${v} appears on ranks ${had} and ${r}`);
      where.set(v, r);
    }),
  );
  const V = Math.max(P - 1, ...where.keys()) + 1;
  const placement = Array.from({ length: V }, (_, v) => where.get(v) ?? (v < P ? v : -1));
  if (placement.includes(-1)) throw new YuanError('schedule', `stage ${placement.indexOf(-1)} is on no rank`);
  const onRank = (r: number) => placement.filter((x) => x === r).length;
  const fc = perStage('forward cost', costs.forwardCost, V, new Array<number>(V).fill(1));
  const ic = perStage('backward input cost', costs.backwardInputCost, V, new Array<number>(V).fill(1));
  const wc = perStage('backward weight cost', costs.backwardWeightCost, V, new Array<number>(V).fill(1));
  const bc = perStage(
    'backward cost',
    costs.backwardCost,
    V,
    ic.map((x, v) => x + wc[v]),
  );
  const weights = perStage(
    'stage weights',
    costs.stageWeights,
    V,
    placement.map((r) => 1 / onRank(r)),
  );
  const factor = costs.pendingWeightFactor ?? 1;
  const pc = new Array<number>(P).fill(0);
  const clock = new Array<number>(P).fill(0);
  const busy = new Array<number>(P).fill(0);
  const maxInFlight = new Array<number>(P).fill(0);
  const state = placement.map(() => ({
    forwarded: new Set<number>(),
    inputDone: new Set<number>(),
    weightDone: new Set<number>(),
    split: new Set<number>(),
    haveInput: new Set<number>(),
    haveGrad: new Set<number>(),
    loadedTargets: new Set<number>(),
  }));
  const held = (r: number) =>
    placement.reduce((a, x, v) => {
      if (x !== r) return a;
      const st = state[v];
      const pendingW = st.inputDone.size - st.weightDone.size;
      return a + weights[v] * (st.forwarded.size - st.weightDone.size + (factor - 1) * pendingW);
    }, 0);
  const complete = (r: number) =>
    placement.every((x, v) => x !== r || state[v].weightDone.size === state[v].forwarded.size);
  const channels = new Map<string, { microbatch: number; time: number }[]>();
  const key = (kind: string, from: number, to: number, stage: number) =>
    `${kind}:${from}->${to}${V === P ? '' : ` (stage ${stage})`}`;
  const fail = (s: number, what: string): never => {
    throw new YuanError('schedule', `stage ${s}, instruction ${pc[s]} (${describe(lists[s][pc[s]])}): ${what}`);
  };
  const atCollective = new Map<string, Set<number>>();
  const run = (s: number, t: number) => {
    clock[s] += t;
    busy[s] += t;
  };

  const tryStep = (s: number): boolean => {
    const ins = lists[s][pc[s]];
    const v = 'microbatch' in ins ? (ins.stage ?? s) : s;
    const st = state[v];
    const last = v === V - 1;
    switch (ins.op) {
      case 'load':
        if (ins.inputs) st.haveInput.add(ins.microbatch);
        if (ins.targets) st.loadedTargets.add(ins.microbatch);
        break;
      case 'recvActivation':
      case 'recvGradient': {
        if (ins.from < 0 || ins.from >= P) fail(s, `receives from stage ${ins.from}, which does not exist`);
        const q = channels.get(key(ins.op === 'recvActivation' ? 'act' : 'grad', ins.from, s, v));
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
        const act = ins.op === 'sendActivation';
        const ready = act ? st.forwarded.has(ins.microbatch) : st.inputDone.has(ins.microbatch);
        if (!ready) fail(s, `sends a ${act ? 'activation' : 'gradient'} it has not computed`);
        const k = key(act ? 'act' : 'grad', s, ins.to, act ? v + 1 : v - 1);
        if (!channels.has(k)) channels.set(k, []);
        channels.get(k)!.push({ microbatch: ins.microbatch, time: clock[s] });
        break;
      }
      case 'forward': {
        const mb = ins.microbatch;
        const local = v > 0 && placement[v - 1] === s && state[v - 1].forwarded.has(mb);
        if (!st.haveInput.has(mb) && !local) fail(s, 'forward without its input (load or recvActivation)');
        if (st.forwarded.has(mb)) fail(s, 'forwards a micro-batch twice');
        if (last && !st.loadedTargets.has(mb)) fail(s, 'the last stage forwards without the targets loaded');
        st.forwarded.add(mb);
        run(s, fc[v]);
        break;
      }
      case 'backward':
      case 'backwardInput': {
        const mb = ins.microbatch;
        if (!st.forwarded.has(mb)) fail(s, 'backward before its forward');
        if (st.inputDone.has(mb)) fail(s, 'backwards a micro-batch twice');
        const local = !last && placement[v + 1] === s && state[v + 1].inputDone.has(mb);
        if (!last && !st.haveGrad.has(mb) && !local) fail(s, 'backward without the output gradient (recvGradient)');
        st.inputDone.add(mb);
        if (ins.op === 'backward') {
          st.weightDone.add(mb);
          run(s, bc[v]);
        } else {
          st.split.add(mb);
          run(s, ic[v]);
        }
        break;
      }
      case 'backwardWeight': {
        const mb = ins.microbatch;
        if (!st.split.has(mb)) fail(s, 'weight backward before its input backward');
        if (st.weightDone.has(mb)) fail(s, 'weight backward of a micro-batch twice');
        st.weightDone.add(mb);
        run(s, wc[v]);
        break;
      }
      case 'reduceTiedGradients': {
        const members = [...new Set(ins.stages)].sort((a, b) => a - b);
        if (!members.includes(s)) fail(s, 'runs a tied-gradient reduction it is not part of');
        const id = members.join(',');
        if (!complete(s)) fail(s, 'reduces tied gradients before all its backwards');
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
        if (!complete(s)) fail(s, 'optimizer step before all its backwards');
        break;
    }
    maxInFlight[s] = Math.max(maxInFlight[s], held(s));
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
  state.forEach((st, v) => {
    if (st.forwarded.size !== st.inputDone.size || st.forwarded.size !== st.weightDone.size)
      throw new YuanError(
        'schedule',
        `stage ${v} forwarded ${st.forwarded.size} micro-batches but backwarded ${st.inputDone.size} (weights ${st.weightDone.size})`,
      );
  });
  const makespan = Math.max(...clock);
  return {
    maxInFlight,
    executed: pc.slice(),
    makespan,
    busy,
    idleFraction: busy.map((b) => (makespan > 0 ? (makespan - b) / makespan : 0)),
    placement,
  };
}

/** What running consecutive optimizer steps back to back gave (`simulateSteps`). Times are in units of the costs. */
export interface SteadyStateResult {
  /** One step alone (`simulateSchedule` of the lists): a step that waits for the previous one to end on every rank. */
  single: SimulationResult;
  /** The time between the ends of consecutive steps once the pipeline repeats (the marginal step time). */
  period: number;
  /** Per rank: 1 − (its busy time per step) / period, the bubble that remains when steps overlap. */
  idleFraction: number[];
}

/**
 * Simulates optimizer steps back to back with nothing between them but each rank's own optimizer step: a rank starts
 * the next step's list as soon as it has finished its own part of the previous one. That is the pipeline under the
 * zero-bubble paper's optimizer post-validation (Qi et al. 2024, §5: the all-reduce "breaks the parallelogram"), where
 * no global synchronisation (gradient norm, non-finite check) separates the steps, and the start-up of one step fills
 * the drain of the one before; collectives in the lists (the tied-gradient sum between the first and last rank) still
 * synchronise their ranks. The period is the marginal time of a step after the first, (makespan of `steps` steps −
 * makespan of one) / (steps − 1). Throws as `simulateSchedule` does; `steps` must be an integer ≥ 2 (default 3).
 */
export function simulateSteps(
  lists: readonly (readonly Instruction[])[],
  costs: SimulationCosts = {},
  steps = 3,
): SteadyStateResult {
  return stepsAfter(simulateSchedule(lists, costs), lists, costs, steps);
}

/** `simulateSteps` given the simulation of one step (`single`, of the same lists and costs). */
export function stepsAfter(
  single: SimulationResult,
  lists: readonly (readonly Instruction[])[],
  costs: SimulationCosts,
  steps = 3,
): SteadyStateResult {
  if (!Number.isInteger(steps) || steps < 2)
    throw new YuanError('schedule', `steady-state steps must be an integer >= 2 (got ${steps})`);
  // micro-batch ids of step k are offset by k·M so that every step's micro-batches stay distinct
  let M = 1;
  for (const l of lists) for (const ins of l) if ('microbatch' in ins) M = Math.max(M, ins.microbatch + 1);
  const repeated = lists.map((l) =>
    Array.from({ length: steps }, (_, j) =>
      l.map((ins) => ('microbatch' in ins ? { ...ins, microbatch: ins.microbatch + j * M } : ins)),
    ).flat(),
  );
  const period = (simulateSchedule(repeated, costs).makespan - single.makespan) / (steps - 1);
  return {
    single,
    period,
    idleFraction: single.busy.map((b) => (period > 0 ? Math.max(0, 1 - b / period) : 0)),
  };
}

function describe(ins: Instruction | undefined): string {
  if (!ins) return 'end';
  const { op, ...rest } = ins;
  const args = Object.entries(rest).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`);
  return `${op}${args.length ? ` ${args.join(' ')}` : ''}`;
}
