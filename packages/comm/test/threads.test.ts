import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PluginRegistry, registerModule } from '@yuan/core';
import * as comm from '../dist/index.js';
import {
  createProcessGroup,
  gridPosition,
  RankFailedError,
  shardRange,
  spawnThreadRanks,
  tcpTransport,
  type TransportPlugin,
} from '../dist/index.js';
import { fixtures, freePort } from './helpers.js';

const worker = pathToFileURL(path.join(fixtures, 'thread-rank.mjs'));

describe('threads transport', () => {
  it.each([1, 2, 3, 4])('runs every collective correctly with %i ranks (odd length, many small buckets)', async (d) => {
    const results = (await spawnThreadRanks(worker, d, { scenario: 'collectives', n: 1003, bucketBytes: 64 })) as {
      rank: number;
      errors: string[];
    }[];
    expect(results.map((r) => r.rank)).toEqual([...Array(d).keys()]);
    for (const r of results) expect(r.errors).toEqual([]);
  });

  it('a rank that dies mid-collective fails every other rank with an error naming it', async () => {
    const err = await spawnThreadRanks(worker, 3, { scenario: 'die', victim: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(RankFailedError);
    expect(err.rank).toBe(1);
    const others = (err as RankFailedError).failures.filter((f) => f.rank !== 1);
    expect(others.map((f) => f.rank).sort()).toEqual([0, 2]);
    for (const f of others) expect(f.message).toMatch(/rank 1 is lost/);
  });

  it('a silent rank is a timeout error naming it, not a hang', async () => {
    const err = await spawnThreadRanks(
      worker,
      2,
      { scenario: 'stall', victim: 1, timeoutMs: 500 },
      { graceMs: 500 },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RankFailedError);
    const r0 = (err as RankFailedError).failures.find((f) => f.rank === 0);
    expect(r0?.message).toMatch(/rank 1 sent nothing to rank 0 for 0.5 s/);
  });

  it('buffers of different lengths are a one-line error', async () => {
    const err = await spawnThreadRanks(worker, 2, { scenario: 'badLengths' }).catch((e) => e);
    expect(err).toBeInstanceOf(RankFailedError);
    expect(err.message).toMatch(/expected \d+ .*buffers of different lengths/);
  });
});

describe('process groups', () => {
  it('shards are balanced with the remainder first', () => {
    expect([0, 1, 2].map((j) => shardRange(10, 3, j))).toEqual([
      [0, 4],
      [4, 3],
      [7, 3],
    ]);
    expect(shardRange(2, 4, 3)).toEqual([2, 0]);
  });

  it('lays out a P × D grid as Megatron: data-parallel groups inside a stage', () => {
    expect(gridPosition(5, 2, 3)).toEqual({
      stage: 1,
      dataRank: 2,
      dataParallelRanks: [3, 4, 5],
      pipelineRanks: [2, 5],
    });
    expect(() => gridPosition(6, 2, 3)).toThrow(/not in a 2 × 3 grid/);
  });

  it('a world of one rank needs no peers and collectives are the identity', async () => {
    const g = await createProcessGroup({ rank: 0, worldSize: 1 });
    const b = Float32Array.of(1, 2);
    await g.allReduce(b);
    await g.barrier();
    expect([...b]).toEqual([1, 2]);
    expect(() => g.subgroup([1])).toThrow(/not a rank of this group/);
    await g.close();
  });

  it("transports are the package's `plugins` (kind transport), and a name is looked up in the registry given, only there", async () => {
    const reg = registerModule(new PluginRegistry(), comm, '@yuan/comm');
    expect(reg.names('transport')).toEqual(['tcp', 'threads']);
    await expect(
      createProcessGroup({ transport: 'carrier-pigeon', registry: reg, rank: 0, worldSize: 2 }),
    ).rejects.toThrow('unknown transport "carrier-pigeon" (registered: tcp, threads)');
    // a registry without the built-ins does not find them: there is no second list to fall back on
    const sent: number[] = [];
    const counting: TransportPlugin = {
      ...tcpTransport,
      name: 'counting',
      async connect(o) {
        const t = await tcpTransport.connect(o);
        const send = t.send.bind(t);
        return Object.assign(t, {
          send: (peer: number, tag: string, data: Uint8Array, opts?: { transfer?: boolean }) => (
            sent.push(o.rank),
            send(peer, tag, data, opts)
          ),
        });
      },
    };
    const own = new PluginRegistry().register(counting, 'test');
    await expect(createProcessGroup({ transport: 'tcp', registry: own, rank: 0, worldSize: 2 })).rejects.toThrow(
      'unknown transport "tcp" (registered: counting)',
    );
    // a third-party transport found by name joins a world of 2 and carries its collectives
    const port = await freePort();
    const ranks = await Promise.all(
      [0, 1].map((rank) =>
        createProcessGroup({
          transport: 'counting',
          registry: own,
          rank,
          worldSize: 2,
          masterPort: port,
          timeoutMs: 5000,
        }),
      ),
    );
    const sums = ranks.map((_, r) => Float32Array.of(r + 1, 10));
    await Promise.all(ranks.map((g, r) => g.allReduce(sums[r]!)));
    expect(sums.map((b) => [...b])).toEqual([
      [3, 20],
      [3, 20],
    ]);
    expect(new Set(sent)).toEqual(new Set([0, 1]));
    await Promise.all(ranks.map((g) => g.close()));
  });

  it('the threads transport outside a thread rank is a usage error', async () => {
    await expect(createProcessGroup({ transport: 'threads' })).rejects.toThrow(
      /only inside a worker started by spawnThreadRanks/,
    );
  });
});
