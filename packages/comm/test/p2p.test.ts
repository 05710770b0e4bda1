// Tagged point-to-point messages and abort() on a ProcessGroup over tcp (ranks of one process on loopback).
import { describe, expect, it } from 'vitest';
import { createProcessGroup, type ProcessGroup } from '../src/index.js';
import { freePort } from './helpers.js';

async function world(n: number): Promise<ProcessGroup[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: n }, (_, rank) =>
      createProcessGroup({
        transport: 'tcp',
        rank,
        worldSize: n,
        masterAddr: '127.0.0.1',
        masterPort: port,
        timeoutMs: 5000,
      }),
    ),
  );
}

describe('point-to-point over tcp', () => {
  it('string and number tags are matched separately, in order per tag, also inside a subgroup', async () => {
    const [a, b, c] = await world(3);
    try {
      await a.send(2, new Float32Array([1, 2]), '3:act:0');
      await a.send(2, new Float32Array([3]), 7);
      await a.send(2, new Float32Array([4]), '3:act:0');
      expect([...(await c.recv(0, 7))]).toEqual([3]);
      expect([...(await c.recv(0, '3:act:0'))]).toEqual([1, 2]);
      expect([...(await c.recv(0, '3:act:0'))]).toEqual([4]);
      // a subgroup's group-local ranks map to global ones; its tags do not meet the world's
      const subA = a.subgroup([0, 2]);
      const subC = c.subgroup([0, 2]);
      await subA.send(1, new Float32Array([5]), 'x');
      expect([...(await subC.recv(0, 'x'))]).toEqual([5]);
      await expect(a.send(1, new Float32Array([1]), 'bad#tag')).rejects.toThrow(/contains "#"/);
      void b;
    } finally {
      await Promise.all([a, b, c].map((g) => g.close()));
    }
  });

  it('abort() on one rank rejects the waits of the others at once, naming it', async () => {
    const [a, b] = await world(2);
    try {
      const waiting = b.recv(0, 'never');
      a.abort(new Error('rank 0 gave up: injected'));
      await expect(waiting).rejects.toThrow(/rank 0 gave up: injected \(reported by rank 0\)/);
      await expect(b.send(0, new Float32Array([1]), 'late')).rejects.toThrow(/rank 0 gave up/);
    } finally {
      await Promise.all([a, b].map((g) => g.close()));
    }
  });
});
