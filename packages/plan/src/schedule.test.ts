import { describe, expect, it } from 'vitest';
import { buildSchedule, simulateSchedule, type Instruction } from './index.js';

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
      /^unknown schedule "interleaved" \(registered: 1f1b, gpipe\)$/,
    );
    // M < P is allowed: the pipeline never fills
    expect(simulateSchedule(lists('1f1b', 8, 2)).maxInFlight).toEqual([2, 2, 2, 2, 2, 2, 2, 1]);
  });
});
