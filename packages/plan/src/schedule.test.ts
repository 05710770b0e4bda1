import { describe, expect, it } from 'vitest';
import {
  actionsOf,
  buildSchedule,
  formatAction,
  formatActionLists,
  getSchedule,
  parseAction,
  parseActionLists,
  simulateSchedule,
  simulateSteps,
  type Instruction,
} from './index.js';

const ALL = ['gpipe', '1f1b', 'interleaved-1f1b', 'zb-h1', 'zb-h2', 'zb-v', 'zb-v-auto'];

const lists = (name: string, P: number, M: number) =>
  Array.from({ length: P }, (_, s) => buildSchedule(name, { stages: P, microbatches: M, stage: s }));

describe('schedules', () => {
  it('1F1B warms up min(P − stage − 1, M) forwards, as Megatron', () => {
    const ops = (l: Instruction[]) =>
      l
        .filter((i) => i.op === 'forward' || i.op === 'backward')
        .map((i) => `${i.op[0].toUpperCase()}${(i as { microbatch: number }).microbatch}`);
    const l = lists('1f1b', 4, 6);
    expect(ops(l[0])).toEqual(['F0', 'F1', 'F2', 'F3', 'B0', 'F4', 'B1', 'F5', 'B2', 'B3', 'B4', 'B5']);
    expect(ops(l[3])).toEqual(['F0', 'B0', 'F1', 'B1', 'F2', 'B2', 'F3', 'B3', 'F4', 'B4', 'F5', 'B5']);
    expect(ops(lists('gpipe', 2, 3)[0])).toEqual(['F0', 'F1', 'F2', 'B0', 'B1', 'B2']);
    // tied embeddings: the first and last stage reduce, every stage steps once at the end
    expect(l[0].slice(-2)).toEqual([{ op: 'reduceTiedGradients', stages: [0, 3] }, { op: 'optimizerStep' }]);
    expect(l[1].slice(-1)).toEqual([{ op: 'optimizerStep' }]);
    expect(l[1].some((i) => i.op === 'reduceTiedGradients')).toBe(false);
    expect(lists('1f1b', 1, 2)[0]).toEqual([
      { op: 'load', microbatch: 0, inputs: true, targets: true },
      { op: 'forward', microbatch: 0 },
      { op: 'backward', microbatch: 0 },
      { op: 'load', microbatch: 1, inputs: true, targets: true },
      { op: 'forward', microbatch: 1 },
      { op: 'backward', microbatch: 1 },
      { op: 'optimizerStep' },
    ]);
  });

  it('every forward has its backward, sends match receives, no deadlock, for all P <= 8, M <= 16', () => {
    for (const name of ['1f1b', 'gpipe']) {
      for (let P = 1; P <= 8; P++) {
        for (let M = 1; M <= 16; M++) {
          const l = lists(name, P, M);
          const r = simulateSchedule(l); // throws on deadlock, unmatched or out-of-order messages, missing backward
          for (let s = 0; s < P; s++) {
            const f = l[s].filter((i) => i.op === 'forward').map((i) => (i as { microbatch: number }).microbatch);
            const b = l[s].filter((i) => i.op === 'backward').map((i) => (i as { microbatch: number }).microbatch);
            expect([...f].sort((x, y) => x - y)).toEqual([...Array(M).keys()]);
            expect([...b].sort((x, y) => x - y)).toEqual([...Array(M).keys()]);
            const sends = l[s].filter((i) => i.op === 'sendActivation').length;
            expect(sends).toBe(s < P - 1 ? M : 0);
            expect(r.maxInFlight[s]).toBe(name === '1f1b' ? Math.min(M, P - s) : M);
          }
        }
      }
    }
  });

  it('the simulated bubble is (P − 1)/(M + P − 1) with backward = 2 × forward, also when M < P', () => {
    for (const name of ['1f1b', 'gpipe']) {
      for (const [P, M] of [
        [4, 1],
        [4, 4],
        [4, 16],
        [8, 3],
      ]) {
        const r = simulateSchedule(lists(name, P, M));
        for (const idle of r.idleFraction) expect(idle).toBeCloseTo((P - 1) / (M + P - 1), 10);
      }
    }
  });

  it('detects deadlocks, mismatched and out-of-order messages, and missing backwards', () => {
    const good = lists('1f1b', 2, 2);
    // stage 1 waits for a gradient nobody sends
    const dead = [good[0], [{ op: 'recvGradient', microbatch: 0, from: 0 } as Instruction, ...good[1]]];
    expect(() => simulateSchedule(dead)).toThrow(
      /^deadlock: stage 0 at recvGradient microbatch=0 from=1; stage 1 at recvGradient microbatch=0 from=0$/,
    );
    // stage 1 receives micro-batch 1 before 0
    const swapped = good[1].map((i) => (i.op === 'recvActivation' ? { ...i, microbatch: 1 - i.microbatch } : i));
    expect(() => simulateSchedule([good[0], swapped])).toThrow(/expected micro-batch 1 but stage 0 sent 0 first/);
    // a stage that never runs backward for micro-batch 1
    const noBack = good[1].filter(
      (i) => !(i.op === 'backward' && i.microbatch === 1) && !(i.op === 'sendGradient' && i.microbatch === 1),
    );
    expect(() => simulateSchedule([good[0], noBack])).toThrow(/deadlock|backward/);
    // a send nobody receives
    expect(() =>
      simulateSchedule([
        [...good[0].slice(0, -2), { op: 'sendGradient', microbatch: 0, to: 1 }, ...good[0].slice(-2)],
        good[1],
      ]),
    ).toThrow();
  });

  it('rejects M < 1, bad stages and unknown schedules on one line', () => {
    expect(() => buildSchedule('1f1b', { stages: 4, microbatches: 0, stage: 0 })).toThrow(
      /^micro-batches must be an integer >= 1 \(got 0\)$/,
    );
    expect(() => buildSchedule('1f1b', { stages: 4, microbatches: 2, stage: 4 })).toThrow(/^stage 4 is outside 0..3$/);
    expect(() => buildSchedule('interleaved', { stages: 4, microbatches: 2, stage: 0 })).toThrow(
      /^unknown schedule "interleaved" \(registered: 1f1b, gpipe, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto\)$/,
    );
    // M < P is allowed: the pipeline never fills
    expect(simulateSchedule(lists('1f1b', 8, 2)).maxInFlight).toEqual([2, 2, 2, 2, 2, 2, 2, 1]);
  });

  it('writes and reads PyTorch action strings', () => {
    expect(parseAction('2F0')).toEqual({ stage: 2, type: 'F', microbatch: 0 });
    expect(formatAction({ stage: 1, type: 'I', microbatch: 3 })).toBe('1I3');
    expect(() => parseAction('0X1')).toThrow(
      /^bad action "0X1" \(expected <stage><F\|B\|I\|W><micro-batch>, e\.g\. 2F0\)$/,
    );
    const { ranks } = getSchedule('zb-v').actions!({ stages: 2, microbatches: 4 });
    expect(parseActionLists(formatActionLists(ranks))).toEqual(ranks);
    // the instruction lists carry the same actions
    const l = lists('zb-v', 2, 4);
    expect(l.map((x, r) => actionsOf(x, r))).toEqual(ranks);
    expect(formatActionLists(ranks).split('\n')[1].split(' ').slice(0, 6)).toEqual([
      '1F0',
      '2F0',
      '1F1',
      '2F1',
      '2I0',
      '2W0',
    ]);
  });

  it('every schedule passes the simulator (each micro-batch F then B or I then W on every stage) for P <= 8, M <= 16', () => {
    for (const name of ALL) {
      const chunks = getSchedule(name).chunks ?? 1;
      for (let P = 1; P <= 8; P++) {
        for (let M = 1; M <= 16; M++) {
          if (name === 'interleaved-1f1b' && M % Math.max(1, Math.floor(M / P)) !== 0) {
            expect(() => lists(name, P, M)).toThrow(/multiple of the rounds/);
            continue;
          }
          const l = lists(name, P, M);
          const r = simulateSchedule(l);
          expect(r.placement.length).toBe(chunks * P);
          for (let s = 0; s < P; s++) {
            const acts = actionsOf(l[s], s);
            for (const v of r.placement.flatMap((x, v) => (x === s ? [v] : []))) {
              for (const t of name.startsWith('zb') ? ['F', 'I', 'W'] : ['F', 'B']) {
                const mbs = acts.filter((a) => a.stage === v && a.type === t).map((a) => a.microbatch);
                expect([...mbs].sort((x, y) => x - y)).toEqual([...Array(M).keys()]);
              }
            }
          }
        }
      }
    }
  });

  it("bubbles: ZB-H1 is the paper's (P − 1)(F + I − W), ZB-V and ZB-H2 below it, all below 1F1B; peaks as designed", () => {
    for (const [P, M] of [
      [2, 4],
      [4, 8],
      [8, 16],
    ]) {
      const idle = (name: string) => {
        const c = 1 / (getSchedule(name).chunks ?? 1);
        return simulateSchedule(lists(name, P, M), { forwardCost: c, backwardInputCost: c, backwardWeightCost: c });
      };
      const h1 = idle('zb-h1');
      for (const x of h1.idleFraction) expect(x).toBeCloseTo((P - 1) / (3 * M + P - 1), 10);
      expect(h1.maxInFlight).toEqual(new Array(P).fill(P));
      const one = idle('1f1b').idleFraction[0];
      expect(Math.max(...idle('zb-v').idleFraction)).toBeLessThan(Math.max(...h1.idleFraction));
      expect(Math.max(...idle('zb-h2').idleFraction)).toBeLessThanOrEqual(Math.max(...h1.idleFraction) + 1e-12);
      expect(Math.max(...idle('interleaved-1f1b').idleFraction)).toBeLessThan(one);
      expect(Math.max(...idle('zb-h2').maxInFlight)).toBe(Math.min(M, 2 * P - 1));
      expect(Math.max(...idle('zb-v').maxInFlight)).toBeLessThanOrEqual(P);
    }
  });

  it('detects a weight backward before its input backward, and a second one', () => {
    const good = lists('zb-h1', 2, 2);
    const i = good[1].findIndex((x) => x.op === 'backwardWeight');
    const early = [...good[1]];
    const [w] = early.splice(i, 1);
    early.unshift(w);
    expect(() => simulateSchedule([good[0], early])).toThrow(/weight backward before its input backward/);
    const twice = [...good[1]];
    twice.splice(i, 0, w);
    expect(() => simulateSchedule([good[0], twice])).toThrow(/weight backward of a micro-batch twice/);
  });
});

describe('steps back to back (post-validation)', () => {
  const half = { forwardCost: 0.5, backwardInputCost: 0.5, backwardWeightCost: 0.5 };
  it('ZB-V at P = 4, M = 8 (F = I = W): one step idles 3/51 of it, overlapped steps none (the parallelogram tiles)', () => {
    const r = simulateSteps(lists('zb-v', 4, 8), half);
    // one step: the last rank waits 3 chunk forwards (1.5) before 24 units of work
    expect(r.single.makespan).toBeCloseTo(25.5, 9);
    expect(Math.max(...r.single.idleFraction)).toBeCloseTo(1.5 / 25.5, 9);
    expect(r.period).toBeCloseTo(24, 9);
    expect(Math.max(...r.idleFraction)).toBeCloseTo(0, 9);
  });
  it("1F1B gains nothing: its ranks' idle is inside the step, and the tied-gradient sum syncs the ends", () => {
    const r = simulateSteps(lists('1f1b', 4, 8));
    expect(r.period).toBeCloseTo(r.single.makespan, 9);
    expect(Math.max(...r.idleFraction)).toBeCloseTo(3 / 11, 9);
  });
  it('needs at least 2 steps', () => {
    expect(() => simulateSteps(lists('zb-v', 2, 4), half, 1)).toThrow(/steady-state steps must be an integer >= 2/);
  });
});
