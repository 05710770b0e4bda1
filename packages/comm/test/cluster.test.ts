// Multi-process runs the way clusters start them: a real one-node SLURM cluster (srun), and ranks in separate
// network namespaces with their own addresses. Each is skipped with a one-line reason where the machine forbids it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, result, run, tcpRank } from './helpers.js';

const repo = path.resolve(__dirname, '../../..');
const isRoot = process.getuid?.() === 0;

function slurmUp(): { conf?: string; reason?: string } {
  if (process.platform !== 'linux') return { reason: 'SLURM test needs Linux' };
  if (!isRoot) return { reason: 'SLURM test needs root to install and start slurmctld/slurmd' };
  const r = spawnSync(path.join(repo, '.ci/slurm-up.sh'), [], { encoding: 'utf8', env: { ...process.env, YUAN_SLURM_DIR: slurmDir }, timeout: 600_000 });
  const conf = /SLURM_CONF=(\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.status === 0 && conf) return { conf };
  return { reason: `SLURM could not be started: ${(r.stderr ?? '').trim().split('\n').pop() || `exit ${r.status}`}` };
}

const slurmDir = `/tmp/yuan-slurm-test-${process.pid}`;
const slurm = slurmUp();
if (slurm.reason) console.warn(`skipped: ${slurm.reason}`);

afterAll(() => {
  if (slurm.conf) spawnSync(path.join(repo, '.ci/slurm-down.sh'), [], { env: { ...process.env, YUAN_SLURM_DIR: slurmDir } });
});

describe('real SLURM (one-node cluster on this machine)', () => {
  it.skipIf(!!slurm.reason)(`srun -n 2 runs an all-reduce over tcp with ranks from SLURM's variables${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`, async () => {
    const port = await freePort();
    const e = await run('srun', ['-n', '2', '--time=2', process.execPath, tcpRank, 'collectives', JSON.stringify({ n: 1003, bucketBytes: 256 })], {
      SLURM_CONF: slurm.conf,
      MASTER_PORT: String(port),
      // srun must not hand its own rank variables from an outer launcher to the tasks
      RANK: undefined,
      WORLD_SIZE: undefined,
    });
    expect(e.code, e.err).toBe(0);
    const lines = e.out.split('\n').filter((l) => l.startsWith('RESULT '));
    expect(lines).toHaveLength(2);
    const results = lines.map((l) => JSON.parse(l.slice(7)));
    expect(results.map((r) => r.rank).sort()).toEqual([0, 1]);
    for (const r of results) expect(r).toMatchObject({ size: 2, errors: [], source: 'slurm' });
  });
});

function netnsReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (!isRoot) return 'network namespaces need root (ip netns)';
  const probe = `yuanpz-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error) return `ip (iproute2) is not available: ${r.error.message}`;
  if (r.status !== 0) return `ip netns add is not allowed here: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}
const netns = netnsReason();
if (netns) console.warn(`skipped: ${netns}`);

describe('ranks in separate network namespaces', () => {
  it.skipIf(!!netns)(`two ranks with their own addresses over a veth pair${netns ? ` (skipped: ${netns})` : ''}`, async () => {
    const tag = (process.pid % 10000).toString();
    const ns = [`yuanpz-a${tag}`, `yuanpz-b${tag}`];
    const addr = ['10.231.77.1', '10.231.77.2'];
    const sh = (cmd: string) => {
      const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
    };
    try {
      sh(`ip netns add ${ns[0]} && ip netns add ${ns[1]}`);
      sh(`ip link add va${tag} netns ${ns[0]} type veth peer name vb${tag} netns ${ns[1]}`);
      for (let i = 0; i < 2; i++) {
        const dev = i === 0 ? `va${tag}` : `vb${tag}`;
        sh(`ip -n ${ns[i]} addr add ${addr[i]}/24 dev ${dev} && ip -n ${ns[i]} link set ${dev} up && ip -n ${ns[i]} link set lo up`);
      }
      const exits = await Promise.all(
        [0, 1].map((rank) =>
          run('ip', ['netns', 'exec', ns[rank]!, process.execPath, tcpRank, 'collectives', JSON.stringify({ n: 1003, bucketBytes: 256 })], {
            RANK: String(rank),
            WORLD_SIZE: '2',
            MASTER_ADDR: addr[0],
            MASTER_PORT: '29555',
          }),
        ),
      );
      for (const e of exits) expect(result(e)).toMatchObject({ size: 2, errors: [], masterAddr: addr[0] });
    } finally {
      spawnSync('sh', ['-c', `ip netns del ${ns[0]}; ip netns del ${ns[1]}`]);
    }
  });
});
