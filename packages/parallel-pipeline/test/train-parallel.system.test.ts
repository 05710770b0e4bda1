// The library entry without the CLI: a user who wants pp 2 × dp 2 with ZeRO-1 writes it into the config's `parallel`
// section and calls trainParallel; the ranks (worker threads here) get the resolved layout and rebuild the registry.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PluginRegistry, registerPluginModules, type JsonObject, type YuanConfig } from '@yuan/core';
import type { EngineSetup } from '@yuan/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parallelLayout } from '@yuan/plan';
import { parallelEngine, trainParallel } from '../src/index.js';
import { packedData, relDiff, tinyConfig, tmp } from './helpers.js';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let data: string;
let registry: PluginRegistry;

beforeAll(async () => {
  data = await packedData();
  registry = new PluginRegistry();
  // as a user's project would: the packages whose plugins the run names (attention, schedules, transports, backends)
  await registerPluginModules(
    registry,
    ['@yuan/model', '@yuan/attention-lfa', '@yuan/plan', '@yuan/comm', '@yuan/tensor'],
    pkg,
  );
  registry.freeze();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const withLayout = (parallel: JsonObject): YuanConfig => ({ ...tinyConfig('lfa'), parallel });
const run = (parallel: JsonObject, out: string) =>
  trainParallel({
    config: withLayout(parallel),
    registry,
    data,
    steps: 3,
    out: path.join(tmp, out),
    seed: 3,
    backend: 'cpu',
    env: {},
  });

describe('trainParallel', () => {
  it('runs parallel: {pp: 2, dp: 2, zero: 1} as 4 thread ranks with the single-process losses', async () => {
    const single = await run({ microbatches: 4 }, 'single');
    expect([single.rank, single.worldSize, single.layout.pp]).toEqual([0, 1, 1]);
    const grid = await run({ pp: 2, dp: 2, zero: 1, microbatches: 4 }, 'grid');
    expect([grid.rank, grid.worldSize]).toEqual([0, 4]);
    expect(grid.layout).toMatchObject({ pp: 2, dp: 2, zero: 1, microbatches: 4, transport: 'threads' });
    expect(grid.history).toHaveLength(3);
    expect(
      relDiff(
        grid.history.map((m) => m.loss),
        single.history.map((m) => m.loss),
      ),
    ).toBeLessThan(1e-4);
  });

  it('refuses a bad layout before starting anything, naming the field', async () => {
    await expect(run({ pp: 2, dp: 3, microbatches: 4 }, 'bad')).rejects.toThrow(
      /^parallel\.dp = 3 does not divide the step's 4 micro-batches/,
    );
    await expect(run({ dp: 2, microbatches: 2, transport: 'carrier-pigeon' }, 'bad')).rejects.toThrow(
      'parallel.transport "carrier-pigeon" is not a registered transport (transports: tcp, threads)',
    );
  });

  it('parallelEngine alone: D > 1 needs a world of ranks', async () => {
    const setup = { config: tinyConfig('lfa') } as EngineSetup;
    await expect(
      parallelEngine(parallelLayout(withLayout({ dp: 2, microbatches: 2 })), registry)(setup),
    ).rejects.toThrow('parallel.dp = 2 needs 2 ranks');
  });
});
