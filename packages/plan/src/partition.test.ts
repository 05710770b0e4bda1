import { PluginRegistry, registerModule } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import * as plan from './index.js';
import { formatBlocks, parseBlocks, partitionLayers } from './index.js';

describe('partitionLayers', () => {
  it('uniform gives the remainder to the first stages (DeepSpeed)', () => {
    expect(partitionLayers('uniform', { layers: 10, stages: 4 })).toEqual([3, 3, 2, 2]);
    expect(partitionLayers('uniform', { layers: 24, stages: 8 })).toEqual(new Array(8).fill(3));
    expect(partitionLayers('uniform', { layers: 5, stages: 5 })).toEqual([1, 1, 1, 1, 1]);
  });

  it('parses explicit blocks and the released repeats', () => {
    expect(partitionLayers('2,2,3,3,4,4,4,2', { layers: 24, stages: 8 })).toEqual([2, 2, 3, 3, 4, 4, 4, 2]);
    const b102 = partitionLayers('2x10,3x20,2x2', { layers: 84, stages: 32 });
    expect(b102).toEqual([...new Array(10).fill(2), ...new Array(20).fill(3), 2, 2]);
    expect(formatBlocks(b102)).toBe('2x10,3x20,2x2');
    expect(parseBlocks('2×2, 3*2')).toEqual([2, 2, 3, 3]);
    expect(partitionLayers([1, 3], { layers: 4, stages: 2 })).toEqual([1, 3]);
  });

  it('one-line errors: sum, count, more stages than layers, malformed, unknown', () => {
    expect(() => partitionLayers('2,2,3', { layers: 8, stages: 3 })).toThrow(
      /^partition blocks 2,2,3 sum to 7 layers; the model has 8$/,
    );
    expect(() => partitionLayers('2,2,4', { layers: 8, stages: 4 })).toThrow(
      /^partition blocks 2,2,4 give 3 stage\(s\); the pipeline has 4 \(--pp\)$/,
    );
    expect(() => partitionLayers('uniform', { layers: 8, stages: 9 })).toThrow(
      /^more pipeline stages \(9\) than layers \(8\): every stage needs at least one layer$/,
    );
    expect(() => partitionLayers('2,0,6', { layers: 8, stages: 3 })).toThrow(/at least one layer/);
    expect(() => partitionLayers('2,a', { layers: 8, stages: 2 })).toThrow(/not valid: expected comma-separated/);
    expect(() => partitionLayers('balanced', { layers: 8, stages: 2 })).toThrow(
      /^unknown partition "balanced" \(registered: memory, parameters, uniform, v-shape; or give blocks such as 2,2,3,3\)$/,
    );
    for (const f of [
      () => partitionLayers('2,2,3', { layers: 8, stages: 3 }),
      () => partitionLayers('x', { layers: 8, stages: 2 }),
    ]) {
      try {
        f();
      } catch (e) {
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });

  it('parameters balances parameter counts with embedding first and head last', () => {
    // 8 equal layers of 10; the embedding weighs 20 and the head 20: ends get fewer layers
    const ctx = {
      layers: 8,
      stages: 4,
      layerParameters: new Array(8).fill(10),
      firstStageParameters: 20,
      lastStageParameters: 20,
    };
    const blocks = partitionLayers('parameters', ctx);
    expect(blocks).toEqual([1, 3, 3, 1]);
    expect(() => partitionLayers('parameters', { layers: 8, stages: 4 })).toThrow(
      /needs the per-layer parameter counts/,
    );
  });

  it('memory minimises the largest stage cost exactly', () => {
    // cost grows with layers × in-flight (P − stage): the first stages must get fewer layers
    const P = 4;
    const cost = (stage: number, _first: number, count: number) => count * (P - stage) + 5 * count;
    const blocks = partitionLayers('memory', { layers: 12, stages: P, stagePeakBytes: cost });
    const worst = (b: number[]) => Math.max(...b.map((n, i) => cost(i, 0, n)));
    expect(worst(blocks)).toBeLessThanOrEqual(worst([3, 3, 3, 3]));
    expect(blocks[0]).toBeLessThan(blocks[3]);
    // brute force over all splits of 12 into 4 positive parts
    let best = Infinity;
    for (let a = 1; a <= 9; a++)
      for (let b = 1; a + b <= 10; b++)
        for (let c = 1; a + b + c <= 11; c++) best = Math.min(best, worst([a, b, c, 12 - a - b - c]));
    expect(worst(blocks)).toBe(best);
    expect(() => partitionLayers('memory', { layers: 8, stages: 2 })).toThrow(/needs the memory model/);
  });

  it('looks partitioners up in a registry, including third-party ones', () => {
    const registry = registerModule(new PluginRegistry(), plan, '@yuan/plan');
    registry.register({
      kind: 'partition',
      name: 'last-heavy',
      description: 'test',
      defaults: {},
      partition: ({ layers, stages }) => [...new Array(stages - 1).fill(1), layers - stages + 1],
    });
    expect(partitionLayers('last-heavy', { layers: 6, stages: 3 }, registry)).toEqual([1, 1, 4]);
    expect(() => partitionLayers('nope', { layers: 6, stages: 3 }, registry)).toThrow(
      /registered: last-heavy, memory, parameters, uniform, v-shape/,
    );
    registry.register({
      kind: 'partition',
      name: 'broken',
      description: 'test',
      defaults: {},
      partition: () => [1, 1],
    });
    expect(() => partitionLayers('broken', { layers: 6, stages: 3 }, registry)).toThrow(
      /^partition "broken" returned blocks 1,1 give 2 stage/,
    );
    expect(registry.names('schedule')).toEqual([
      '1f1b',
      'gpipe',
      'interleaved-1f1b',
      'zb-h1',
      'zb-h2',
      'zb-v',
      'zb-v-auto',
    ]);
    // only the registry given is asked: one without the package's partitioners does not find them
    const other = new PluginRegistry().register({
      kind: 'partition',
      name: 'last-heavy',
      description: 'test',
      defaults: {},
      partition: () => [1, 1, 4],
    });
    expect(() => partitionLayers('uniform', { layers: 6, stages: 3 }, other)).toThrow(
      'unknown partition "uniform" (registered: last-heavy; or give blocks such as 2,2,3,3)',
    );
    expect(partitionLayers('uniform', { layers: 6, stages: 3 })).toEqual([2, 2, 2]); // no registry: the package's own
  });
});
