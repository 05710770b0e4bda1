// P × D: two data-parallel copies of a 2-stage pipeline (coordinators in this process, stage groups over tcp on
// loopback) give the single-process trainer's losses, parameters and moments. ZeRO 2 here (per-micro-batch
// reduce-scatter inside the 1F1B schedule); ZeRO 0 and 1 run through the CLI in packages/cli/test/train-pp-dp.test.ts.
import net from 'node:net';
import { rmSync } from 'node:fs';
import { createProcessGroup, type ProcessGroup, type ZeroStage } from '@yuan/parallel-zero';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineEngine } from '../src/index.js';
import { LFA_MODULE, maxWeightDiff, packedData, relDiff, run, setupOf, single, tinyConfig, tmp } from './helpers.js';

let data: string;
beforeAll(async () => {
  await initBackend('cpu');
  data = await packedData();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STEPS = 4;
const M = 4;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The coordinators' group: D ranks of one process over tcp on loopback. */
async function groups(d: number): Promise<ProcessGroup[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: d }, (_, rank) => createProcessGroup({ transport: 'tcp', rank, worldSize: d, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 20_000 })));
}

describe('pipeline × data parallelism (pp 2 × dp 2)', () => {
  it.each([2] as ZeroStage[])('ZeRO %i gives the single-process losses, parameters and moments', async (zero) => {
    const config = tinyConfig('lfa');
    const ref = await run(single, setupOf(config, data, STEPS, undefined, M), STEPS);
    const gs = await groups(2);
    const basePort = await freePort();
    try {
      const runs = await Promise.all(
        gs.map((group) =>
          run(pipelineEngine({ stages: 2, microbatches: M, partition: [2, 2], plugins: [LFA_MODULE], dataParallel: { group, zero, basePort, timeoutMs: 20_000 } }), setupOf(config, data, STEPS), STEPS),
        ),
      );
      for (const r of runs) {
        expect(relDiff(r.losses, ref.losses)).toBeLessThan(1e-4);
        expect([...r.contents.weights.keys()]).toEqual([...ref.contents.weights.keys()]);
        expect(maxWeightDiff(r.contents.weights, ref.contents.weights)).toBeLessThan(1e-4);
        expect(maxWeightDiff(r.contents.optimizer.moments, ref.contents.optimizer.moments)).toBeLessThan(1e-4);
        expect(r.contents.optimizer.step).toBe(STEPS);
      }
      expect(runs.map((r) => (r.engine as { writer?: boolean }).writer)).toEqual([true, false]);
    } finally {
      await Promise.all(gs.map((g) => g.close()));
    }
  });
});
