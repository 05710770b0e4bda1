import { YuanError } from '@yuan/core';
import type { Action, ScheduleActions } from './actions.js';
import type { PassCosts } from './instructions.js';

/** A rank's actions on its one stage (the rank's index). */
const on =
  (stage: number) =>
  (type: Action['type'], microbatch: number): Action => ({ stage, type, microbatch });
const identity = (P: number) => Array.from({ length: P }, (_, r) => r);

/** GPipe (Huang et al. 2019): every rank runs all M forwards, then all M full backwards, in micro-batch order. */
export function gpipeActions(P: number, M: number): ScheduleActions {
  const ranks = identity(P).map((r) => {
    const a = on(r);
    return [...Array.from({ length: M }, (_, mb) => a('F', mb)), ...Array.from({ length: M }, (_, mb) => a('B', mb))];
  });
  return { ranks, placement: identity(P) };
}

/**
 * 1F1B (PipeDream-flush; Megatron's `forward_backward_pipelining_without_interleaving`): rank r runs
 * w = min(P − r − 1, M) warm-up forwards, then alternates one forward and one full backward, then drains the last w
 * backwards.
 */
export function oneFOneBActions(P: number, M: number): ScheduleActions {
  const ranks = identity(P).map((r) => {
    const a = on(r);
    const w = Math.min(P - r - 1, M);
    const out: Action[] = [];
    for (let mb = 0; mb < w; mb++) out.push(a('F', mb));
    for (let i = 0; i < M - w; i++) out.push(a('F', w + i), a('B', i));
    for (let mb = M - w; mb < M; mb++) out.push(a('B', mb));
    return out;
  });
  return { ranks, placement: identity(P) };
}

/**
 * Interleaved 1F1B (Narayanan et al. 2021, §2.2; the micro-batch grouping of PyTorch's `ScheduleInterleaved1F1B`):
 * rank r holds the `chunks` virtual stages r, r + P, …; micro-batches go through in rounds of m = M/R (R = max(1,
 * ⌊M/P⌋) rounds; M must be a multiple of R). The k-th forward of a rank is on its chunk ⌊k/m⌋ mod chunks, the k-th
 * backward on chunk chunks − 1 − (⌊k/m⌋ mod chunks) (depth first). Rank r warms up with
 * w = min((chunks − 1)·m + 2(P − 1 − r), chunks·M) forwards, then alternates one forward and one backward, then
 * drains w backwards. Errors: chunks < 1, M not a multiple of R.
 */
export function interleavedActions(P: number, M: number, chunks = 2): ScheduleActions {
  if (!Number.isInteger(chunks) || chunks < 1)
    throw new YuanError('schedule', `interleaved 1F1B needs an integer number of chunks >= 1 (got ${chunks})`);
  const rounds = Math.max(1, Math.floor(M / P));
  if (M % rounds !== 0) {
    throw new YuanError(
      'schedule',
      `interleaved 1F1B needs the micro-batches to be a multiple of the rounds max(1, floor(M/P)) = ${rounds} (got M = ${M})`,
    );
  }
  const perRound = M / rounds;
  const total = chunks * M;
  const ranks = identity(P).map((r) => {
    const warmup = Math.min((chunks - 1) * perRound + 2 * (P - 1 - r), total);
    const fCount = new Array<number>(chunks).fill(0);
    const bCount = new Array<number>(chunks).fill(0);
    const fwd = (k: number): Action => {
      const c = Math.floor(k / perRound) % chunks;
      return { stage: c * P + r, type: 'F', microbatch: fCount[c]++ };
    };
    const bwd = (j: number): Action => {
      const c = chunks - 1 - (Math.floor(j / perRound) % chunks);
      return { stage: c * P + r, type: 'B', microbatch: bCount[c]++ };
    };
    const out: Action[] = [];
    for (let k = 0; k < warmup; k++) out.push(fwd(k));
    for (let j = 0; j < total - warmup; j++) out.push(fwd(warmup + j), bwd(j));
    for (let j = total - warmup; j < total; j++) out.push(bwd(j));
    return out;
  });
  const placement = Array.from({ length: chunks * P }, (_, v) => v % P);
  return { ranks, placement };
}

/**
 * ZB-V (Qi et al. 2024, "Zero Bubble Pipeline Parallelism", §6): 2P virtual stages in a V — rank r holds stage r
 * (chunk 0, going down) and stage 2P − 1 − r (chunk 1, coming back), so rank 0 holds both the embedding and the loss.
 * With n = max(2P − 1, M), rank r runs 2(P − r) − 1 chunk-0 forwards, r pairs (chunk-1 F, chunk-0 F), P − r triples
 * (chunk-1 F, I, W), then the steady state (chunk-0 F while any remain, chunk-0 I, W, chunk-1 F, I, W) until both
 * chunks have forwarded n micro-batches, then r pairs (chunk-0 I, chunk-1 I), P − r pairs (chunk-0 I, its oldest
 * pending W), then the pending chunk-1 and chunk-0 W passes; actions on micro-batches ≥ M are dropped. The order is
 * the paper's handcrafted ZB-V for F = I = W (the same as PyTorch's `ScheduleZBVZeroBubble`).
 */
export function zbvActions(P: number, M: number): ScheduleActions {
  const n = Math.max(2 * P - 1, M);
  const ranks = identity(P).map((r) => {
    const s0 = r;
    const s1 = 2 * P - 1 - r;
    let f0 = 0;
    let f1 = 0;
    let i0 = 0;
    let i1 = 0;
    const out: Action[] = [];
    const F0 = () => out.push({ stage: s0, type: 'F', microbatch: f0++ });
    const F1 = () => out.push({ stage: s1, type: 'F', microbatch: f1++ });
    const IW0 = () => out.push({ stage: s0, type: 'I', microbatch: i0 }, { stage: s0, type: 'W', microbatch: i0++ });
    const IW1 = () => out.push({ stage: s1, type: 'I', microbatch: i1 }, { stage: s1, type: 'W', microbatch: i1++ });
    for (let k = 0; k < 2 * (P - r) - 1; k++) F0();
    for (let k = 0; k < r; k++) {
      F1();
      F0();
    }
    for (let k = 0; k < P - r; k++) {
      F1();
      IW1();
    }
    while (f1 < f0 || f0 < n) {
      if (f0 < n) F0();
      IW0();
      F1();
      IW1();
    }
    let w0 = i0;
    let w1 = i1;
    for (let k = 0; k < r; k++)
      out.push({ stage: s0, type: 'I', microbatch: i0++ }, { stage: s1, type: 'I', microbatch: i1++ });
    for (let k = 0; k < P - r; k++) {
      out.push({ stage: s0, type: 'I', microbatch: i0++ }, { stage: s0, type: 'W', microbatch: w0++ });
    }
    while (w1 < i1) out.push({ stage: s1, type: 'W', microbatch: w1++ });
    while (w0 < i0) out.push({ stage: s0, type: 'W', microbatch: w0++ });
    return out.filter((a) => a.microbatch < M);
  });
  const placement = Array.from({ length: 2 * P }, (_, v) => (v < P ? v : 2 * P - 1 - v));
  return { ranks, placement };
}

/**
 * ZB-H1 (Qi et al. 2024, §3.1): 1F1B with each full backward split into I then W, rank r postponing its W passes by r
 * micro-batches (after the I of micro-batch i comes the W of micro-batch i − r; the last r W passes close the list),
 * so every rank holds at most P micro-batches, 1F1B's peak, and the cool-down waits are filled with W passes. With
 * F = I = W its simulated bubble is the paper's (P − 1)(F + I − W) per rank.
 */
export function zbH1Actions(P: number, M: number): ScheduleActions {
  const ranks = identity(P).map((r) => {
    const a = on(r);
    const w = Math.min(P - 1 - r, M);
    const out: Action[] = [];
    let pendingFrom = 0;
    const input = (i: number) => {
      out.push(a('I', i));
      if (i - r >= 0) out.push(a('W', pendingFrom++));
    };
    for (let mb = 0; mb < w; mb++) out.push(a('F', mb));
    for (let i = 0; i < M - w; i++) {
      out.push(a('F', w + i));
      input(i);
    }
    for (let i = M - w; i < M; i++) input(i);
    while (pendingFrom < M) out.push(a('W', pendingFrom++));
    return out;
  });
  return { ranks, placement: identity(P) };
}

/**
 * A zero-bubble schedule placed greedily by time (our construction of the paper's handcrafted ZB-H1/ZB-H2, §3.1):
 * every rank, whenever it is free, runs the oldest input backward `I` whose output gradient has arrived, else the
 * next forward if its input has arrived and the rank holds fewer than `cap` micro-batches (forwarded, weight
 * backward not yet run), else its oldest pending weight backward `W` — W passes fill what would be bubbles, and are
 * forced when the cap is reached. Times are `costs` (default F = I = W = 1) with free communication. ZB-H2 is
 * cap = 2P − 1. Errors: cap < 1, non-positive costs.
 */
export function greedyZeroBubbleActions(P: number, M: number, cap: number, costs?: PassCosts): ScheduleActions {
  const c = costs ?? { forward: 1, backwardInput: 1, backwardWeight: 1 };
  for (const [k, v] of Object.entries(c)) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
      throw new YuanError('schedule', `pass cost ${k} must be a number > 0 (got ${v})`);
  }
  if (!Number.isInteger(cap) || cap < 1)
    throw new YuanError('schedule', `in-flight cap must be an integer >= 1 (got ${cap})`);
  const fDone = identity(P).map(() => new Array<number>(M).fill(Infinity));
  const iDone = identity(P).map(() => new Array<number>(M).fill(Infinity));
  const next = identity(P).map(() => ({ f: 0, i: 0, w: 0 }));
  const clock = new Array<number>(P).fill(0);
  const ranks: Action[][] = identity(P).map(() => []);
  const waiting = new Array<boolean>(P).fill(false);
  const finished = (s: number) => next[s].w === M;
  const before = (k: number, s: number) => clock[k] < clock[s] || (clock[k] === clock[s] && !waiting[k] && waiting[s]);
  for (;;) {
    let s = -1;
    for (let k = 0; k < P; k++) if (!finished(k) && (s < 0 || before(k, s))) s = k;
    if (s < 0) break;
    const t = clock[s];
    const n = next[s];
    const gradAt = n.i < n.f ? (s === P - 1 ? fDone[s][n.i] : iDone[s + 1][n.i]) : Infinity;
    const inputAt = n.f < M && n.f - n.w < cap ? (s === 0 ? 0 : fDone[s - 1][n.f]) : Infinity;
    const acts = gradAt <= t || inputAt <= t || n.w < n.i;
    if (acts) waiting.fill(false);
    if (gradAt <= t) {
      clock[s] = iDone[s][n.i] = t + c.backwardInput;
      ranks[s].push({ stage: s, type: 'I', microbatch: n.i++ });
    } else if (inputAt <= t) {
      clock[s] = fDone[s][n.f] = t + c.forward;
      ranks[s].push({ stage: s, type: 'F', microbatch: n.f++ });
    } else if (n.w < n.i) {
      clock[s] = t + c.backwardWeight;
      ranks[s].push({ stage: s, type: 'W', microbatch: n.w++ });
    } else {
      // idle until the next thing that can unblock this rank: an arrival or another rank's next decision
      const others = clock.filter((x, k) => k !== s && !finished(k) && x >= t && !(x === t && waiting[k]));
      if (others.includes(t)) {
        waiting[s] = true; // a rank deciding at the same time goes first
        continue;
      }
      const later = [gradAt, inputAt, ...others].filter((x) => x > t && x < Infinity);
      if (!later.length) throw new YuanError('schedule', `greedy zero-bubble schedule stuck at rank ${s}`);
      clock[s] = Math.min(...later);
      waiting[s] = false;
    }
  }
  return { ranks, placement: identity(P) };
}
