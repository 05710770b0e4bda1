// Multi-process runs the way clusters start them: a real one-node SLURM cluster (srun), and ranks in separate
// network namespaces with their own addresses. Each is skipped with a one-line reason where the machine forbids it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { slurmScript } from '../src/index.js';
import { freePort, result, run, tcpRank } from './helpers.js';

const repo = path.resolve(__dirname, '../../..');
const isRoot = process.getuid?.() === 0;

function slurmUp(): { conf?: string; reason?: string } {
  if (process.platform !== 'linux') return { reason: 'SLURM test needs Linux' };
  if (!isRoot) return { reason: 'SLURM test needs root to install and start slurmctld/slurmd' };
  const r = spawnSync(path.join(repo, '.ci/slurm-up.sh'), [], {
    encoding: 'utf8',
    env: { ...process.env, YUAN_SLURM_DIR: slurmDir },
    timeout: 600_000,
  });
  const conf = /SLURM_CONF=(\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.status === 0 && conf) return { conf };
  return { reason: `SLURM could not be started: ${(r.stderr ?? '').trim().split('\n').pop() || `exit ${r.status}`}` };
}

const slurmDir = `/tmp/yuan-slurm-test-${process.pid}`;
const slurm = slurmUp();
if (slurm.reason) console.warn(`skipped: ${slurm.reason}`);

const jobDir = mkdtempSync(path.join(tmpdir(), 'yuan-sbatch-'));
afterAll(() => {
  if (slurm.conf)
    spawnSync(path.join(repo, '.ci/slurm-down.sh'), [], { env: { ...process.env, YUAN_SLURM_DIR: slurmDir } });
  rmSync(jobDir, { recursive: true, force: true });
});

/** The states of a job that has ended. */
const ENDED = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$/;

/**
 * Submits `script` with sbatch from `jobDir` and waits for the job to end: its final state, its output file and the
 * seconds from submission to the end. Ranks take no rank variables of this process.
 */
async function sbatch(script: string, file: string): Promise<{ state: string; output: string; seconds: number }> {
  writeFileSync(path.join(jobDir, file), script, { mode: 0o755 });
  const env = { ...process.env, SLURM_CONF: slurm.conf };
  for (const k of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
  const started = Date.now();
  // --time: SLURM ends the job itself should the test's own guard below fail to
  const sub = spawnSync('sbatch', ['--parsable', '--time=2', file], { cwd: jobDir, env, encoding: 'utf8' });
  expect(sub.status, sub.stderr).toBe(0);
  const id = sub.stdout.trim().split(';')[0]!;
  let state = '';
  // a hang guard, not a timing test
  while (Date.now() - started < 90_000) {
    state =
      /JobState=(\S+)/.exec(spawnSync('scontrol', ['show', 'job', '-o', id], { env, encoding: 'utf8' }).stdout)?.[1] ??
      '';
    if (ENDED.test(state)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!ENDED.test(state)) spawnSync('scancel', [id], { env });
  const name = /^#SBATCH --job-name=(\S+)$/m.exec(script)![1];
  return {
    state,
    output: readFileSync(path.join(jobDir, `${name}-${id}.out`), 'utf8'),
    seconds: (Date.now() - started) / 1000,
  };
}

describe('real SLURM (one-node cluster on this machine)', () => {
  it.skipIf(!!slurm.reason)(
    `srun -n 2 runs an all-reduce over tcp with ranks from SLURM's variables${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
    async () => {
      const port = await freePort();
      const e = await run(
        'srun',
        [
          '-n',
          '2',
          '--time=2',
          process.execPath,
          tcpRank,
          'collectives',
          JSON.stringify({ n: 1003, bucketBytes: 256 }),
        ],
        {
          SLURM_CONF: slurm.conf,
          MASTER_PORT: String(port),
          // srun must not hand its own rank variables from an outer launcher to the tasks
          RANK: undefined,
          WORLD_SIZE: undefined,
        },
      );
      expect(e.code, e.err).toBe(0);
      const lines = e.out.split('\n').filter((l) => l.startsWith('RESULT '));
      expect(lines).toHaveLength(2);
      const results = lines.map((l) => JSON.parse(l.slice(7)));
      expect(results.map((r) => r.rank).sort()).toEqual([0, 1]);
      for (const r of results) expect(r).toMatchObject({ size: 2, errors: [], source: 'slurm' });
    },
  );

  it.skipIf(!!slurm.reason)(
    `the sbatch script of slurmScript: a rank SIGKILLed while the other is inside a 3 s computation; the survivor's reason reaches the job's output${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
    async () => {
      // with srun --kill-on-bad-exit=1, SLURM stopped the busy survivor before it could read the news
      const script = slurmScript({
        nproc: 2,
        nnodes: 1,
        masterPort: await freePort(),
        name: 'die',
        command: [process.execPath, tcpRank, 'die', JSON.stringify({ victim: 1, busyMs: 3000 })],
      });
      const job = await sbatch(script, 'die.sh');
      expect(job.state, job.output).toBe('FAILED');
      expect(job.output).toMatch(/^error: rank 1 is lost: its connection to rank 0 closed without a goodbye/m);
      expect(job.output).toMatch(/task 1: Killed/);
      // the survivor ended by itself: srun did not have to stop it
      expect(job.output).not.toMatch(/First task exited/);
      expect(job.seconds).toBeLessThan(60);
    },
  );

  it.skipIf(!!slurm.reason)(
    `a rank that never notices the failure is killed --grace seconds after the first rank ended; the failed rank's own error is in the output${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
    async () => {
      const body =
        "if (process.env.SLURM_PROCID === '0') { console.error('error: rank 0 could not read its data'); process.exit(2) } else setInterval(() => {}, 1000)";
      const job = await sbatch(
        slurmScript({ nproc: 2, nnodes: 1, name: 'stuck', graceSeconds: 2, command: [process.execPath, '-e', body] }),
        'stuck.sh',
      );
      expect(job.state, job.output).toBe('FAILED');
      expect(job.output).toMatch(/^error: rank 0 could not read its data$/m);
      expect(job.output).toMatch(/First task exited 2s ago/);
      expect(job.seconds).toBeLessThan(60);
    },
  );
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
  it.skipIf(!!netns)(
    `two ranks with their own addresses over a veth pair${netns ? ` (skipped: ${netns})` : ''}`,
    async () => {
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
          sh(
            `ip -n ${ns[i]} addr add ${addr[i]}/24 dev ${dev} && ip -n ${ns[i]} link set ${dev} up && ip -n ${ns[i]} link set lo up`,
          );
        }
        const exits = await Promise.all(
          [0, 1].map((rank) =>
            run(
              'ip',
              [
                'netns',
                'exec',
                ns[rank]!,
                process.execPath,
                tcpRank,
                'collectives',
                JSON.stringify({ n: 1003, bucketBytes: 256 }),
              ],
              {
                RANK: String(rank),
                WORLD_SIZE: '2',
                MASTER_ADDR: addr[0],
                MASTER_PORT: '29555',
              },
            ),
          ),
        );
        for (const e of exits) expect(result(e)).toMatchObject({ size: 2, errors: [], masterAddr: addr[0] });
      } finally {
        spawnSync('sh', ['-c', `ip netns del ${ns[0]}; ip netns del ${ns[1]}`]);
      }
    },
  );
});
