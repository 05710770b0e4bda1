import { YuanError } from '@yuan/core';
import { lowerActions, type Action, type ScheduleActions } from './actions.js';
import { zbvActions } from './generators.js';
import type { PassCosts } from './instructions.js';
import { simulateSchedule, simulateSteps } from './schedule.js';

/** Rank of each of the 2P virtual stages of a V: stage v on rank v (v < P), else on rank 2P − 1 − v. */
export function vPlacement(P: number): number[] {
  return Array.from({ length: 2 * P }, (_, v) => (v < P ? v : 2 * P - 1 - v));
}

function checkCosts(what: string, c: PassCosts): void {
  for (const k of ['forward', 'backwardInput', 'backwardWeight'] as const) {
    const v = c[k];
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
      throw new YuanError('schedule', `${what}: pass cost ${k} must be a number > 0 (got ${v})`);
  }
}

/** Which ready forward a free rank prefers when both of its chunks have one. */
type ForwardRule = 'later-stage' | 'older-input';

interface GreedyResult {
  actions: ScheduleActions;
  makespan: number;
}

/**
 * One greedy list schedule of a V: every rank, whenever it is free, runs (1) the ready input backward `I` whose output
 * gradient arrived first (the later stage on a tie), else (2) a ready forward while the rank holds less than `cap`
 * (micro-batches forwarded and weight backward not yet run, each virtual stage counted with `weights[v]`), the chunk
 * chosen by `rule`, else (3) its oldest pending weight backward `W`; else it waits for the next arrival. With more than
 * `lag` W passes pending, the oldest W goes before a forward (0: W right after its I, as the handcrafted ZB-V's steady
 * state). A chunk-0 forward also keeps room for the chunk-1 forwards of up to `reserve` micro-batches already past
 * chunk 0 (so the rank cannot fill up with work it has no room to finish). Each stage
 * runs F, I and W in micro-batch order, so the lists lower to in-order channels. Communication is free.
 */
function greedyV(
  P: number,
  M: number,
  costs: readonly PassCosts[],
  weights: number[],
  cap: number,
  rule: ForwardRule,
  reserve: number,
  lag: number,
) {
  const V = 2 * P;
  const placement = vPlacement(P);
  const mine = Array.from({ length: P }, (_, r) => [r, V - 1 - r]);
  const fDone = costs.map(() => new Array<number>(M).fill(Infinity));
  const iDone = costs.map(() => new Array<number>(M).fill(Infinity));
  const next = costs.map(() => ({ f: 0, i: 0, w: 0 }));
  const wQueue: number[][] = Array.from({ length: P }, () => []); // per rank: stages of pending W, in I order
  const clock = new Array<number>(P).fill(0);
  const ranks: Action[][] = Array.from({ length: P }, () => []);
  const waiting = new Array<boolean>(P).fill(false);
  const finished = (r: number) => mine[r].every((v) => next[v].w === M);
  const held = (r: number) => mine[r].reduce((a, v) => a + weights[v] * (next[v].f - next[v].w), 0);
  const inputAt = (v: number) => {
    const n = next[v];
    if (n.f >= M) return Infinity;
    return v === 0 ? 0 : fDone[v - 1][n.f];
  };
  const gradAt = (v: number) => {
    const n = next[v];
    if (n.i >= n.f) return Infinity;
    return v === V - 1 ? fDone[v][n.i] : iDone[v + 1][n.i];
  };
  const before = (k: number, s: number) => clock[k] < clock[s] || (clock[k] === clock[s] && !waiting[k] && waiting[s]);
  const EPS = 1e-9;
  for (;;) {
    let s = -1;
    for (let k = 0; k < P; k++) if (!finished(k) && (s < 0 || before(k, s))) s = k;
    if (s < 0) break;
    const t = clock[s];
    const [a, b] = mine[s]; // a: chunk 0 (going down), b: chunk 1 (coming back)
    let pick: { v: number; type: 'F' | 'I' | 'W' } | undefined;
    const ga = gradAt(a);
    const gb = gradAt(b);
    if (Math.min(ga, gb) <= t + EPS) pick = { v: gb <= ga ? b : a, type: 'I' };
    if (!pick && wQueue[s].length > lag) pick = { v: wQueue[s][0], type: 'W' };
    if (!pick) {
      // room is kept for the chunk-1 forward of every micro-batch already past chunk 0, so the rank never fills up
      // with chunk-0 work whose gradients need a chunk-1 forward it has no room for
      const reserved = held(s) + weights[b] * Math.min(reserve, next[a].f - next[b].f);
      const fa = inputAt(a);
      const fb = inputAt(b);
      const ra = fa <= t + EPS && reserved + weights[a] + (reserve > 0 ? weights[b] : 0) <= cap + EPS;
      const rb = fb <= t + EPS && held(s) + weights[b] <= cap + EPS;
      if (ra && rb) pick = { v: rule === 'later-stage' || fb <= fa ? b : a, type: 'F' };
      else if (ra || rb) pick = { v: ra ? a : b, type: 'F' };
    }
    if (!pick && wQueue[s].length) pick = { v: wQueue[s][0], type: 'W' };
    if (pick) {
      waiting.fill(false);
      const { v, type } = pick;
      const n = next[v];
      const c = costs[v];
      if (type === 'I') {
        clock[s] = iDone[v][n.i] = t + c.backwardInput;
        wQueue[s].push(v);
        ranks[s].push({ stage: v, type, microbatch: n.i++ });
      } else if (type === 'F') {
        clock[s] = fDone[v][n.f] = t + c.forward;
        ranks[s].push({ stage: v, type, microbatch: n.f++ });
      } else {
        wQueue[s].shift();
        clock[s] = t + c.backwardWeight;
        ranks[s].push({ stage: v, type, microbatch: n.w++ });
      }
      continue;
    }
    // idle until the next thing that can unblock this rank: an arrival or another rank's next decision
    const others = clock.filter((x, k) => k !== s && !finished(k) && x >= t && !(x === t && waiting[k]));
    if (others.includes(t)) {
      waiting[s] = true; // a rank deciding at the same time goes first
      continue;
    }
    const later = [ga, gb, inputAt(a), inputAt(b), ...others].filter((x) => x > t && x < Infinity);
    if (!later.length) throw new YuanError('schedule', `cost-aware ZB-V stuck at rank ${s} (in-flight cap ${cap})`);
    clock[s] = Math.min(...later);
    waiting[s] = false;
  }
  return { actions: { ranks, placement }, makespan: Math.max(...clock) } satisfies GreedyResult;
}

/**
 * Per virtual stage pass times from per-chunk `costs` (length 2P) or, without them, from one rank's `stage` costs
 * split equally over its two chunks (default F = I = W = 1 per rank).
 */
export function vStageCosts(P: number, stageCosts?: readonly PassCosts[], costs?: PassCosts): PassCosts[] {
  if (stageCosts) {
    if (stageCosts.length !== 2 * P)
      throw new YuanError(
        'schedule',
        `a V over ${P} ranks needs pass costs for ${2 * P} virtual stages (got ${stageCosts.length})`,
      );
    stageCosts.forEach((c, v) => checkCosts(`virtual stage ${v}`, c));
    return [...stageCosts];
  }
  const c = costs ?? { forward: 1, backwardInput: 1, backwardWeight: 1 };
  checkCosts('stage', c);
  const half = { forward: c.forward / 2, backwardInput: c.backwardInput / 2, backwardWeight: c.backwardWeight / 2 };
  return Array.from({ length: 2 * P }, () => half);
}

/** The makespan of `actions` run with per virtual stage `costs` (the simulator's, so every candidate is timed alike). */
function timed(actions: ScheduleActions, costs: readonly PassCosts[], weights: number[]) {
  const lists = actions.ranks.map((_, r) => lowerActions(actions, r));
  const sim = simulateSchedule(lists, {
    forwardCost: costs.map((c) => c.forward),
    backwardInputCost: costs.map((c) => c.backwardInput),
    backwardWeightCost: costs.map((c) => c.backwardWeight),
    stageWeights: weights,
  });
  return { makespan: sim.makespan, held: Math.max(...sim.maxInFlight) };
}

/**
 * Cost-aware ZB-V: the order of a V's 2P virtual stages (rank r: stages r and 2P − 1 − r, split backward) built from
 * each virtual stage's own F, I, W (`stageCosts`, length 2P; default the rank's `costs` halved per chunk) by a greedy
 * list scheduler, in the spirit of the zero-bubble authors' automatic ZB-V (Qi et al. 2024, §6; our construction):
 * whenever a rank is free it runs the ready I whose gradient came first, else a ready forward while it holds fewer
 * than `memory` × P micro-batches (each chunk counted by its share of an average rank's forward time, so at memory 1
 * the peak is ZB-V's and 1F1B's first stage's, and a rank with less work may hold more micro-batches), else its oldest
 * pending W. Sixteen rule variants are scheduled (`greedyV`: which chunk's forward first; W right after its I,
 * deferred by 1 or 2, or only when memory forces it; with or without room kept for chunk-1 forwards), the handcrafted
 * ZB-V order (`zbvActions`) is one more candidate, and the one with the shortest simulated step within the limit is
 * returned (the handcrafted one on a tie: equal costs with M ≥ 2P − 1 keep PyTorch's lists). Errors: a cost list that
 * is not 2P costs > 0, memory < 1.
 */
export function costAwareZbvActions(
  P: number,
  M: number,
  stageCosts?: readonly PassCosts[],
  costs?: PassCosts,
  memory = 1,
): ScheduleActions {
  if (!(Number.isFinite(memory) && memory >= 1))
    throw new YuanError('schedule', `the memory limit must be a number >= 1 times 1F1B's peak (got ${memory})`);
  const c = vStageCosts(P, stageCosts, costs);
  // memory: a micro-batch held on virtual stage v counts its share of an average rank's forward time, so P of them is
  // the peak of 1F1B's first stage (and of ZB-V's, with equal chunks); a rank with less work holds more micro-batches
  const totalF = c.reduce((a, x) => a + x.forward, 0);
  const weights = c.map((x) => (x.forward * P) / totalF);
  const cap = memory * P;
  const candidates: ScheduleActions[] = [zbvActions(P, M)];
  for (const rule of ['later-stage', 'older-input'] as const)
    for (const reserve of [0, 1])
      for (const lag of [0, 1, 2, Infinity]) {
        try {
          candidates.push(greedyV(P, M, c, weights, cap, rule, reserve, lag).actions);
        } catch {
          // this rule fills a rank with chunk-0 work it has no room to finish: not a candidate
        }
      }
  let best = candidates[0];
  let bestTime = timed(best, c, weights);
  for (const cand of candidates.slice(1)) {
    const t = timed(cand, c, weights);
    if (t.makespan < bestTime.makespan * (1 - 1e-9) && t.held <= Math.max(cap, bestTime.held) + 1e-9) {
      best = cand;
      bestTime = t;
    }
  }
  return best;
}

/** What `vShapePartition` chooses from: the model's per-layer pass times and the extra work at the two ends. */
export interface VShapeInput {
  /** Transformer layers L ≥ 2P. */
  layers: number;
  /** Pipeline ranks P ≥ 1: the V has 2P virtual stages. */
  ranks: number;
  /** Micro-batches per step M ≥ 1. */
  microbatches: number;
  /** One layer's F, I, W (any unit), or one per layer (length L). */
  layerCosts: PassCosts | readonly PassCosts[];
  /** Extra work of virtual stage 0 (the embedding; default none). */
  firstCosts?: Partial<PassCosts>;
  /** Extra work of virtual stage 2P − 1 (final norm, output projection and loss; default none). */
  lastCosts?: Partial<PassCosts>;
  /** In-flight limit in multiples of 1F1B's peak (default 1; see `costAwareZbvActions`). */
  memory?: number;
}

/** Per virtual stage pass times of `blocks` (layers per virtual stage, in model order) with the ends' extra work. */
export function blockCosts(input: VShapeInput, blocks: readonly number[]): PassCosts[] {
  const per = (l: number): PassCosts =>
    Array.isArray(input.layerCosts) ? (input.layerCosts as PassCosts[])[l] : (input.layerCosts as PassCosts);
  const V = blocks.length;
  let first = 0;
  return blocks.map((n, v) => {
    const c = { forward: 0, backwardInput: 0, backwardWeight: 0 };
    for (let l = first; l < first + n; l++) {
      c.forward += per(l).forward;
      c.backwardInput += per(l).backwardInput;
      c.backwardWeight += per(l).backwardWeight;
    }
    first += n;
    const extra = v === 0 ? input.firstCosts : v === V - 1 ? input.lastCosts : undefined;
    c.forward += extra?.forward ?? 0;
    c.backwardInput += extra?.backwardInput ?? 0;
    c.backwardWeight += extra?.backwardWeight ?? 0;
    return c;
  });
}

/**
 * The simulated step of the cost-aware ZB-V on `blocks`: makespan and the bubble share 1 − work / (P × makespan) of one
 * step alone, and `steady`: the same lists run step after step with no synchronisation between steps (`simulateSteps`,
 * the pipeline under post-validation) — its period and bubble 1 − work / (P × period).
 */
export function vShapeStep(input: VShapeInput, blocks: readonly number[]) {
  const P = input.ranks;
  const c = blockCosts(input, blocks);
  const actions = costAwareZbvActions(P, input.microbatches, c, undefined, input.memory);
  const totalF = c.reduce((a, x) => a + x.forward, 0);
  const weights = c.map((x) => (x.forward * P) / totalF);
  const lists = actions.ranks.map((_, r) => lowerActions(actions, r));
  const costs = {
    forwardCost: c.map((x) => x.forward),
    backwardInputCost: c.map((x) => x.backwardInput),
    backwardWeightCost: c.map((x) => x.backwardWeight),
    stageWeights: weights,
  };
  const sim = simulateSchedule(lists, costs);
  const work = sim.busy.reduce((a, b) => a + b, 0);
  const run = simulateSteps(lists, costs);
  return {
    actions,
    sim,
    makespan: sim.makespan,
    bubble: 1 - work / (P * sim.makespan),
    steady: { period: run.period, bubble: 1 - work / (P * run.period) },
  };
}

/**
 * Layers per virtual stage of a V (length 2P, in model order; rank r holds blocks r and 2P − 1 − r) for the cost-aware
 * ZB-V (`costAwareZbvActions`): a local search from the better of the uniform split and one with lighter chunk-0
 * stages on ranks 0..P − 2, that moves one layer at a time between two
 * virtual stages while the simulated step gets shorter (all pairs up to P = 8, else neighbours in model order and the
 * two chunks of a rank), every block keeping ≥ 1 layer. Why not uniform: rank r starts only after the chunk-0
 * forwards of ranks < r, so lighter early chunks start the last ranks sooner, and a rank with less work may hold more
 * micro-batches under the same memory (see the README's bound). Errors: L < 2P, M < 1, bad costs.
 */
export function vShapePartition(input: VShapeInput): number[] {
  const P = input.ranks;
  const L = input.layers;
  const V = 2 * P;
  if (!Number.isInteger(P) || P < 1) throw new YuanError('usage', `pipeline ranks must be an integer >= 1 (got ${P})`);
  if (!Number.isInteger(L) || L < V)
    throw new YuanError('usage', `a V over ${P} ranks needs at least ${V} layers (got ${L})`);
  if (!Number.isInteger(input.microbatches) || input.microbatches < 1)
    throw new YuanError('usage', `micro-batches must be an integer >= 1 (got ${input.microbatches})`);
  if (Array.isArray(input.layerCosts) && input.layerCosts.length !== L)
    throw new YuanError('usage', `per-layer pass costs: ${input.layerCosts.length} given for ${L} layers`);
  const base = Math.floor(L / V);
  // two starts: the uniform split, and one with a layer moved from each chunk 0 of ranks 0..P−2 to its chunk 1
  const uniform = Array.from({ length: V }, (_, v) => base + (v < L % V ? 1 : 0));
  const early = uniform.map((n, v) =>
    v < P - 1 && n > 1 ? n - 1 : v >= V - P + 1 && uniform[V - 1 - v] > 1 ? n + 1 : n,
  );
  let blocks = uniform;
  let best = vShapeStep(input, blocks).makespan;
  const t = vShapeStep(input, early).makespan;
  if (t < best * (1 - 1e-9)) {
    blocks = early;
    best = t;
  }
  const pairs: [number, number][] = [];
  for (let a = 0; a < V; a++)
    for (let b = 0; b < V; b++) if (a !== b && (P <= 8 || Math.abs(a - b) === 1 || a + b === V - 1)) pairs.push([a, b]);
  for (let round = 0; round < 4 * L; round++) {
    let next: number[] | undefined;
    for (const [from, to] of pairs) {
      if (blocks[from] <= 1) continue;
      const cand = [...blocks];
      cand[from]--;
      cand[to]++;
      const t = vShapeStep(input, cand).makespan;
      if (t < best * (1 - 1e-9)) {
        best = t;
        next = cand;
      }
    }
    if (!next) break;
    blocks = next;
  }
  return blocks;
}
