import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { spawnThreadRanks } from '@yuan/comm';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

const worker = pathToFileURL(path.join(fixtures, 'space-rank.mjs'));

// four buckets; the groups come as a layer-by-layer backward hands them over: single buckets, then a two-bucket group
// (the head's: final norm + embedding), then one of those buckets again (the embedding lookup's share)
const shapes = { a: [3], b: [2, 2], c: [5], d: [1], e: [4] };
const codes = { a: 1, b: 2, c: 3, d: 4, e: 5 };
const payload = {
  shapes,
  codes,
  buckets: [['a'], ['b'], ['c'], ['d', 'e']],
  groups: [['c'], ['d', 'e'], ['a', 'b'], ['b']],
  weight: 0.5,
};

type Result = {
  errors: string[];
  rank: number;
  ranges: [number, number][];
  slots: { name: string; offset: number; size: number }[];
  shard: number[];
  full: number[];
  active: number[];
  peakInFlightBytes: number;
  tensors: number;
};

describe('GradientSpace: group-by-group reduction with two groups in flight', () => {
  it('sums every group into the shard, reduces the next group while one is in flight, and counts the unreduced bytes', async () => {
    const d = 2;
    const results = (await spawnThreadRanks(worker, d, payload)) as Result[];
    const ranks = (d * (d + 1)) / 2; // sum of (r + 1) over the ranks
    for (const r of results) {
      // the whole space of the summed gradients: weight × (each group's contribution; b comes twice)
      const want = new Float32Array(17);
      const whole = new Float32Array(17);
      for (const s of r.slots) {
        const times = payload.groups.filter((gr) => gr.includes(s.name)).length;
        for (let i = 0; i < s.size; i++) {
          whole[s.offset + i] = ranks * (i + 1) * codes[s.name as keyof typeof codes];
          want[s.offset + i] = payload.weight * times * whole[s.offset + i];
        }
      }
      expect(r.slots.map((s) => s.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(r.full).toEqual([...whole]);
      expect(r.shard).toEqual(r.ranges.flatMap(([start, length]) => [...want.subarray(start, start + length)]));
      // the second group's reduce-scatter started while the first one's was still running (overlap), and never more
      // than the buckets of two consecutive groups (here [d, e] then [a, b]: 3) were in flight
      expect(r.active[1]).toBe(2);
      expect(Math.max(...r.active)).toBeLessThanOrEqual(3);
      // the most unreduced bytes at once: [d, e] (5 floats) in flight while [a, b] (7) is handed over
      expect(r.peakInFlightBytes).toBe(4 * (5 + 7));
    }
    expect(results.map((r) => r.tensors)).toEqual([0, 0]);
  });
});

describe('GradientSpace: several micro-batches into one shard', () => {
  it('a later backward refills the buckets the earlier one reduced, and the shard holds both sums', async () => {
    const d = 2;
    const results = (await spawnThreadRanks(worker, d, { ...payload, backwards: 3 })) as Result[];
    const ranks = (d * (d + 1)) / 2;
    for (const r of results) {
      const want = new Float32Array(17);
      for (const s of r.slots) {
        const times = payload.groups.filter((gr) => gr.includes(s.name)).length;
        // micro-batch k's gradients are k × those of the first: 1 + 2 + 3
        for (let i = 0; i < s.size; i++)
          want[s.offset + i] = 6 * payload.weight * times * ranks * (i + 1) * codes[s.name as keyof typeof codes];
      }
      expect(r.shard).toEqual(r.ranges.flatMap(([start, length]) => [...want.subarray(start, start + length)]));
    }
    expect(results.map((r) => r.tensors)).toEqual([0, 0]);
  });
});

describe('GradientSpace: buckets of several groups (reduce_bucket_size)', () => {
  // buckets span groups: [e, d] is complete after the second group, [c, a] after the fourth; b is its own bucket and
  // comes twice (as the tied embedding: the head's share, then the lookup's), each time reduced at once
  const bucketed = {
    ...payload,
    buckets: [['e', 'd'], ['c', 'a'], ['b']],
    groups: [['e'], ['d', 'b'], ['c'], ['a'], ['b']],
  };

  it('sends one reduce-scatter per bucket once it holds all its gradients, and sums every send into the shard', async () => {
    const d = 2;
    const results = (await spawnThreadRanks(worker, d, bucketed)) as Result[];
    const ranks = (d * (d + 1)) / 2;
    for (const r of results) {
      const want = new Float32Array(17);
      for (const s of r.slots) {
        const times = bucketed.groups.filter((gr) => gr.includes(s.name)).length;
        for (let i = 0; i < s.size; i++)
          want[s.offset + i] = bucketed.weight * times * ranks * (i + 1) * codes[s.name as keyof typeof codes];
      }
      expect(r.slots.map((s) => s.name)).toEqual(['e', 'd', 'c', 'a', 'b']);
      expect(r.shard).toEqual(r.ranges.flatMap(([start, length]) => [...want.subarray(start, start + length)]));
      // four sends for five groups: [e, d] and b together, [c, a], b
      expect(r.active).toHaveLength(4);
      // the most unreduced bytes at once: [c, a] being filled (8 floats) while [e, d] (5) and b (4) are reduced
      expect(r.peakInFlightBytes).toBe(4 * (8 + 5 + 4));
      expect(r.errors).toEqual([
        'a second gradient of e came before its bucket was reduced',
        'gradient bucket 0 was never complete: no gradient for d',
      ]);
    }
    expect(results.map((r) => r.tensors)).toEqual([0, 0]);
  });
});
