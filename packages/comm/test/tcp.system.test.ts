import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, result, runRanks } from './helpers.js';

const torch = (port: number) => () => ({ MASTER_PORT: String(port) });

describe('tcp transport (processes on loopback)', () => {
  it('runs every collective correctly with 3 ranks', async () => {
    const exits = await runRanks(3, 'collectives', { n: 1003, bucketBytes: 64 }, torch(await freePort()));
    for (const e of exits) expect(result(e).errors).toEqual([]);
  });

  it('a rank SIGKILLed mid-collective: every other rank exits non-zero naming it', async () => {
    const exits = await runRanks(3, 'die', { victim: 2 }, torch(await freePort()));
    expect(exits[2]!.signal).toBe('SIGKILL');
    for (const e of [exits[0]!, exits[1]!]) {
      expect(e.code).toBe(1);
      expect(e.err.trim()).toMatch(/^error: rank 2 is lost: .*$/);
    }
  });

  it('a silent rank is a timeout naming it, not a hang', async () => {
    // Two ranks: with more, a rank waiting on an innocent neighbour of the silent one may time out first and name it.
    const exits = await runRanks(2, 'stall', { victim: 1, timeoutMs: 800 }, torch(await freePort()));
    for (const e of [exits[0]!]) {
      expect(e.code).toBe(1);
      expect(e.err).toMatch(/rank 1 (sent nothing|did not take data)/);
    }
  }, 60_000);

  it('a config hash that differs is the same one-line error on every rank', async () => {
    const port = await freePort();
    const exits = await runRanks(2, 'collectives', {}, (r) => ({
      MASTER_PORT: String(port),
      TEST_CONFIG_HASH: r === 0 ? 'aaa' : 'bbb',
    }));
    for (const e of exits) {
      expect(e.code).toBe(1);
      expect(e.err.trim()).toBe('error: config mismatch: rank 1 has config hash "bbb", rank 0 has "aaa"');
    }
  });

  it('a rank running another code version is the same one-line error on every rank', async () => {
    const port = await freePort();
    const exits = await runRanks(2, 'collectives', {}, (r) => ({
      MASTER_PORT: String(port),
      TEST_CODE_VERSION: r === 0 ? 'yuan 0.1.0' : 'yuan 0.2.0',
    }));
    for (const e of exits) {
      expect(e.code).toBe(1);
      expect(e.err.trim()).toBe('error: code version mismatch: rank 1 runs "yuan 0.2.0", rank 0 runs "yuan 0.1.0"');
    }
  });

  it('world sizes that differ are a one-line error on every rank', async () => {
    const port = await freePort();
    const exits = await runRanks(2, 'collectives', {}, (r) => ({
      MASTER_PORT: String(port),
      WORLD_SIZE: r === 0 ? '2' : '3',
    }));
    for (const e of exits)
      expect(e.err.trim()).toBe('error: world size mismatch: rank 1 has WORLD_SIZE=3, rank 0 has WORLD_SIZE=2');
  });

  it('a rendezvous missing a rank names it', async () => {
    const port = await freePort();
    const exits = await runRanks(2, 'collectives', { rendezvousTimeoutMs: 1000 }, () => ({
      MASTER_PORT: String(port),
      WORLD_SIZE: '3',
    }));
    for (const e of exits)
      expect(e.err.trim()).toBe(
        `error: rendezvous timed out after 1 s: rank(s) 2 of 3 never joined rank 0 at 127.0.0.1:${port}`,
      );
  });

  it('a master port in use is a one-line error', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const exits = await runRanks(2, 'collectives', { rendezvousTimeoutMs: 1000 }, torch(port));
      expect(exits[0]!.err.trim()).toMatch(new RegExp(`^error: MASTER_PORT ${port} is already in use`));
      expect(exits[1]!.err.trim()).toMatch(/^error: rendezvous .*(did not answer|closed the connection)/);
    } finally {
      busy.close();
    }
  });
});
