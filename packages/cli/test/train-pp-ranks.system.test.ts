// Pipeline parallelism across processes: each process is one pipeline rank (`yuan launch --nproc P×D -- yuan train
// --pp P [--dp D] --transport tcp`, Megatron's order: stage s = ranks s·D … s·D+D−1), activations over the tcp
// transport. The single-process losses and final weights; `yuan train --pp 2 --transport tcp` starting its own ranks;
// a SIGKILLed stage process is an error naming it on the others, never a hang; a world that is not P × D is refused;
// `srun -n 2` on a real one-node SLURM cluster.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectClose,
  freePort,
  maxDiff,
  series,
  weights,
  slurmCluster,
  tinyRun,
  rankPid,
  rankFreeEnv,
} from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-ppranks-'));
const data = path.join(tmp, 'data');
const tiny = tinyRun(data);
const env = rankFreeEnv();

const train = (args: string[]) => {
  const r = spawnSync(process.execPath, [bin, 'train', ...tiny, ...args], { encoding: 'utf8', env, timeout: 90_000 });
  return { code: r.status, err: r.stderr };
};
const launch = async (nproc: number, args: string[]) => {
  const port = await freePort();
  const r = spawnSync(
    process.execPath,
    [
      bin,
      'launch',
      '--nproc',
      String(nproc),
      '--master-port',
      String(port),
      '--',
      process.execPath,
      bin,
      'train',
      ...tiny,
      ...args,
    ],
    { encoding: 'utf8', env, timeout: 90_000 },
  );
  return { code: r.status, err: `${r.stderr}${r.stdout}` };
};

let single: string;

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from({ length: 80 }, (_, i) => `Paragraph ${i}: pipeline ranks pass activations along, line ${i * 7}.`).join(
      '\n\n',
    ),
  );
  const r = await yuan(
    'data',
    'prepare',
    '--input',
    path.join(tmp, 'corpus.txt'),
    '--tokenizer',
    'bytes',
    '--output',
    data,
    '--valid-fraction',
    '0.2',
  );
  expect(r.code).toBe(0);
  single = path.join(tmp, 'single');
  const s = train(['--steps', '4', '--microbatches', '4', '--out', single]);
  expect(s.code, s.err).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function expectSingle(out: string): void {
  expectClose(series(out, 'loss'), series(single, 'loss'));
  expectClose(series(out, 'gradNorm'), series(single, 'gradNorm'));
  expect(series(single, 'validLoss').length).toBeGreaterThan(0); // blank-line separated documents: a valid split
  expectClose(series(out, 'validLoss'), series(single, 'validLoss'));
  expect(maxDiff(weights(out), weights(single))).toBeLessThan(1e-5);
}

describe('yuan launch -- yuan train --pp P [--dp D] --transport tcp: one process per pipeline rank', () => {
  const cases: [string, number, string[]][] = [
    ['--nproc 2, --pp 2', 2, ['--pp', '2']],
    ['--nproc 4, --pp 2 --dp 2 --zero 1', 4, ['--pp', '2', '--dp', '2', '--zero', '1']],
    ['--nproc 4, --pp 2 --zero 0 (D = WORLD_SIZE / P)', 4, ['--pp', '2', '--zero', '0']],
    [
      '--nproc 4, --pp 2 --dp 2 --zero 2 --schedule gpipe',
      4,
      ['--pp', '2', '--dp', '2', '--zero', '2', '--schedule', 'gpipe'],
    ],
  ];
  it.each(cases)(
    '%s gives the single-process losses, gradient norms, validation losses and final weights',
    async (name, nproc, flags) => {
      const out = path.join(tmp, name.replace(/\W+/g, '-'));
      const r = await launch(nproc, [
        '--steps',
        '4',
        '--microbatches',
        '4',
        '--out',
        out,
        '--transport',
        'tcp',
        ...flags,
      ]);
      expect(r.code, r.err).toBe(0);
      expect(series(out, 'loss')).toHaveLength(4);
      expectSingle(out);
      // rank 0 (stage 0, data rank 0) is the only writer
      expect(r.err).toMatch(/\[rank 0\] trained 4 steps/);
      expect(r.err).not.toMatch(/\[rank [1-9]\] (trained|wrote)/);
    },
  );

  it('a checkpoint gathered to rank 0 of a --pp 2 run resumes as --pp 2 --dp 2 --zero 1 with the uninterrupted losses', async () => {
    const out = path.join(tmp, 'resume');
    const a = await launch(2, ['--steps', '2', '--microbatches', '4', '--out', out, '--pp', '2', '--transport', 'tcp']);
    expect(a.code, a.err).toBe(0);
    const b = await launch(4, [
      '--steps',
      '4',
      '--microbatches',
      '4',
      '--out',
      out,
      '--resume',
      out,
      '--pp',
      '2',
      '--dp',
      '2',
      '--zero',
      '1',
      '--transport',
      'tcp',
    ]);
    expect(b.code, b.err).toBe(0);
    expect(b.err).toMatch(/resumed from .*checkpoint-00000002 at step 2/);
    expectSingle(out);
  });

  it('yuan train --pp 2 --transport tcp (not launched) starts its own 2 local rank processes', () => {
    const out = path.join(tmp, 'direct');
    const r = train(['--steps', '4', '--microbatches', '4', '--out', out, '--pp', '2', '--transport', 'tcp']);
    expect(r.code, r.err).toBe(0);
    expectSingle(out);
  });

  it('a world that is not P × D is the same one-line error on every rank', async () => {
    const odd = await launch(3, ['--steps', '1', '--microbatches', '4', '--out', path.join(tmp, 'bad1'), '--pp', '2']);
    expect(odd.code).not.toBe(0);
    for (const rank of [0, 1, 2])
      expect(odd.err).toMatch(
        new RegExp(
          `^\\[rank ${rank}\\] error: the world has 3 ranks, not a multiple of --pp 2: WORLD_SIZE must be P × D$`,
          'm',
        ),
      );
    const short = await launch(2, [
      '--steps',
      '1',
      '--microbatches',
      '4',
      '--out',
      path.join(tmp, 'bad2'),
      '--pp',
      '2',
      '--dp',
      '2',
    ]);
    expect(short.code).not.toBe(0);
    for (const rank of [0, 1])
      expect(short.err).toMatch(
        new RegExp(
          `^\\[rank ${rank}\\] error: the world has 2 ranks but --pp 2 × --dp 2 needs 4: WORLD_SIZE must be P × D$`,
          'm',
        ),
      );
  });
});

/** Starts `yuan launch --nproc N -- yuan train …`, signals rank `victim` after the first checkpoint, returns exit code and output. */
async function killMidRun(
  nproc: number,
  victim: number,
  flags: string[],
  out: string,
  signal: NodeJS.Signals = 'SIGKILL',
  timeout = 20,
): Promise<{ code: number | null; err: string; ms: number }> {
  const port = await freePort();
  const args = [
    '--steps',
    '400',
    '--microbatches',
    '4',
    '--transport',
    'tcp',
    '--timeout',
    String(timeout),
    '--set',
    'train.checkpointEvery=2',
    '--out',
    out,
    ...flags,
  ];
  const child = spawn(
    process.execPath,
    [
      bin,
      'launch',
      '--nproc',
      String(nproc),
      '--master-port',
      String(port),
      '--',
      process.execPath,
      bin,
      'train',
      ...tiny,
      ...args,
    ],
    { env },
  );
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // wait for the first checkpoint (every stage is then mid-run), then SIGKILL the victim, found by its environment
  const deadline = Date.now() + 60_000;
  while (!(existsSync(out) && readdirSync(out).some((d) => /^checkpoint-\d+$/.test(d))) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  const pid = rankPid(out, victim);
  expect(pid, err).toBeDefined();
  const killedAt = Date.now();
  process.kill(pid!, signal);
  const code = await exited;
  return { code, err, ms: Date.now() - killedAt };
}

describe('a pipeline rank that dies', () => {
  it('rank 0 failing outside the engine (its metrics file cannot be written) stops the other stage at once, naming why', async () => {
    const out = path.join(tmp, 'writer-fails');
    mkdirSync(path.join(out, 'metrics-is-a-folder'), { recursive: true });
    const port = await freePort();
    const t0 = Date.now();
    const r = spawnSync(
      process.execPath,
      [
        bin,
        'launch',
        '--nproc',
        '2',
        '--master-port',
        String(port),
        '--',
        process.execPath,
        bin,
        'train',
        ...tiny,
        '--steps',
        '6',
        '--microbatches',
        '4',
        '--pp',
        '2',
        '--transport',
        'tcp',
        '--timeout',
        '60',
        '--out',
        out,
        '--metrics',
        path.join(out, 'metrics-is-a-folder'),
      ],
      { encoding: 'utf8', env },
    );
    expect(r.status).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(40_000); // not the 60 s collective timeout
    expect(r.stderr).toMatch(/^\[rank 0\] error: EISDIR/m);
    expect(r.stderr).toMatch(/^\[rank 1\] error: .*rank 0 stopped: EISDIR/m);
    expect(r.stderr).toMatch(/^error: rank 0 exited with code 1: error: EISDIR/m); // the launcher names the root cause
  });

  it('SIGKILL of the last stage mid-run (--pp 2): the other rank exits non-zero naming it, yuan launch fails, no hang', async () => {
    const r = await killMidRun(2, 1, ['--pp', '2'], path.join(tmp, 'kill-a'));
    expect(r.ms).toBeLessThan(20_000); // noticed from the closed socket, well before the 20 s timeout
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/^\[rank 0\] error: pipeline stage 0 \(rank 0\) failed at step \d+: rank 1 is lost/m);
    expect(r.err).toMatch(/^error: rank 1 exited with signal SIGKILL/m);
  });

  it('SIGKILL of stage 1 of data rank 0 (--pp 2 --dp 2, rank 2): all three others exit non-zero naming rank 2', async () => {
    const r = await killMidRun(4, 2, ['--pp', '2', '--dp', '2', '--zero', '1'], path.join(tmp, 'kill-b'));
    expect(r.ms).toBeLessThan(20_000);
    expect(r.code).not.toBe(0);
    for (const k of [0, 1, 3])
      expect(r.err).toMatch(
        new RegExp(
          `^\\[rank ${k}\\] error: pipeline stage ${k >> 1} of data-parallel rank ${k & 1} \\(rank ${k}\\) failed .*rank 2 is lost`,
          'm',
        ),
      );
    expect(r.err).toMatch(/^error: rank 2 exited with signal SIGKILL/m);
  });

  it('a stage that hangs (SIGSTOP) is a timeout naming it after --timeout seconds, never a hang of the run', async () => {
    const r = await killMidRun(2, 1, ['--pp', '2'], path.join(tmp, 'kill-c'), 'SIGSTOP', 3);
    // 3 s of silence, then launch's 10 s grace, SIGTERM (pending while stopped) and SIGKILL 5 s later
    expect(r.ms).toBeLessThan(30_000);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(
      /^\[rank 0\] error: pipeline stage 0 \(rank 0\) failed .*rank 1 sent nothing to rank 0 for 3 s/m,
    );
  });
});

const slurm = slurmCluster('pp');

describe('a real SLURM cluster (one node on this machine)', () => {
  it.skipIf(!!slurm.reason)(
    `srun -n 2 yuan train --pp 2 runs one stage per task with the single-process losses${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
    async () => {
      const out = path.join(tmp, 'srun');
      const port = await freePort();
      const r = spawnSync(
        'srun',
        [
          '-n',
          '2',
          '--time=5',
          process.execPath,
          bin,
          'train',
          ...tiny,
          '--steps',
          '4',
          '--microbatches',
          '4',
          '--out',
          out,
          '--pp',
          '2',
        ],
        {
          encoding: 'utf8',
          env: { ...env, SLURM_CONF: slurm.conf, MASTER_PORT: String(port) },
          timeout: 300_000,
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expectSingle(out);
    },
  );
});
