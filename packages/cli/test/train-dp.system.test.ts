// Data parallelism with ZeRO 0/1/2 from the CLI: worker-thread ranks, local processes over TCP, `yuan launch`, a real
// one-node SLURM cluster (srun), a rank killed in the middle of a step, resume, and bad input.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectClose,
  freePort,
  maxDiff,
  metrics,
  series,
  weights,
  slurmCluster,
  tinyRun,
  rankPid,
  rankFreeEnv,
} from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-dp-'));
const data = path.join(tmp, 'data');
const tiny = tinyRun(data);
const env = rankFreeEnv();

const losses = (dir: string) => series(dir, 'loss');
const norms = (dir: string) => series(dir, 'gradNorm');
const train = (args: string[], extraEnv: Record<string, string | undefined> = {}) => {
  const r = spawnSync(process.execPath, [bin, 'train', ...tiny, ...args], {
    encoding: 'utf8',
    env: { ...env, ...extraEnv },
  });
  return { code: r.status, err: r.stderr, out: r.stdout };
};

let single: number[];
let singleNorms: number[];
let singleWeights: Float32Array;
let singleValid: number[];

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from(
      { length: 80 },
      (_, i) => `Paragraph ${i}: data parallel ranks split the micro-batches, line ${i * 7}.`,
    ).join('\n\n'),
  ); // blank lines: 80 documents, so the validation split is not empty
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
    '0.1',
  );
  expect(r.code).toBe(0);
  const s = train(['--steps', '4', '--microbatches', '4', '--out', path.join(tmp, 'single')]);
  expect(s.code, s.err).toBe(0);
  single = losses(path.join(tmp, 'single'));
  singleNorms = norms(path.join(tmp, 'single'));
  singleWeights = weights(path.join(tmp, 'single'));
  singleValid = series(path.join(tmp, 'single'), 'validLoss');
  expect(singleValid.length).toBeGreaterThan(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan train --dp', () => {
  // every combination of D, ZeRO stage and transport the issue names
  const cases: [string, string[]][] = ['threads', 'tcp'].flatMap((transport) =>
    ['2', '4'].flatMap((dp) =>
      ['0', '1', '2'].map((zero): [string, string[]] => [
        `${transport}, --dp ${dp} --zero ${zero}`,
        ['--dp', dp, '--zero', zero, '--transport', transport],
      ]),
    ),
  );
  it.each(cases)('%s gives the single-process losses and parameters (same global batch)', (name, flags) => {
    const out = path.join(tmp, name.replace(/\W+/g, '-'));
    const r = train(['--steps', '4', '--microbatches', '4', '--out', out, ...flags]);
    expect(r.code, r.err).toBe(0);
    expectClose(losses(out), single);
    expectClose(norms(out), singleNorms); // the reduced gradients themselves, not only what AdamW makes of them
    expectClose(series(out, 'validLoss'), singleValid); // each rank evaluates its share of the batches; the sums are reduced
    expect(maxDiff(weights(out), singleWeights)).toBeLessThan(1e-5);
  });

  it.each(['none', 'selective', 'full'])(
    '--dp 2 --zero 2 --recompute %s gives the single-process losses; only full runs a layer forward twice',
    (recompute) => {
      const out = path.join(tmp, `z2-recompute-${recompute}`);
      const r = train([
        '--steps',
        '4',
        '--microbatches',
        '4',
        '--out',
        out,
        '--dp',
        '2',
        '--zero',
        '2',
        '--recompute',
        recompute,
      ]);
      expect(r.code, r.err).toBe(0);
      expectClose(losses(out), single);
      expectClose(norms(out), singleNorms);
      expect(maxDiff(weights(out), singleWeights)).toBeLessThan(1e-5);
      // 4 micro-batches × 2 layers per step over both ranks; full recompute runs each layer again in its backward
      const forwards = metrics(out)
        .filter((m) => m.loss !== undefined)
        .map((m) => m.layerForwards);
      expect(forwards).toEqual(Array(4).fill(recompute === 'full' ? 16 : 8));
    },
  );

  it('ZeRO 1 holds 1/D of the Adam states and ZeRO 2 1/D of the gradients too, as yuan plan predicts', async () => {
    const n = 33344; // parameters of this tiny model
    const byStage = (zero: number, dp: number) => {
      const out = path.join(tmp, `mem-z${zero}-d${dp}`);
      const r = train([
        '--steps',
        '1',
        '--microbatches',
        '4',
        '--out',
        out,
        '--dp',
        String(dp),
        '--zero',
        String(zero),
      ]);
      expect(r.code, r.err).toBe(0);
      return metrics(out).find((m) => m.optimizerBytes !== undefined)!;
    };
    const plan = async (zero: number, dp: number) => {
      const p = await yuan(
        'plan',
        '--preset',
        'tiny-lfa',
        '--set',
        'model.hiddenSize=32',
        '--set',
        'model.numLayers=2',
        '--set',
        'model.ffnSize=64',
        '--dp',
        String(dp),
        '--zero',
        String(zero),
        '--microbatches',
        '4',
        '--micro-batch-size',
        '2',
        '--seq',
        '16',
        '--precision',
        'fp32',
        '--json',
      );
      expect(p.code, p.err).toBe(0);
      return JSON.parse(p.out).stages[0] as {
        parameters: number;
        optimizerBytes: number;
        gradientBytes: number;
        gradientInFlightBytes: number;
      };
    };
    const z0 = byStage(0, 2);
    const z1 = byStage(1, 2);
    const z2 = byStage(2, 4);
    expect(z0.optimizerBytes).toBe(8 * n);
    expect(z1.optimizerBytes).toBe((8 * n) / 2); // rank 0's shard: n/2 values of m and v
    expect(z1.gradientBytes).toBe(4 * n);
    expect(z2.optimizerBytes).toBe((8 * n) / 4);
    expect(z2.gradientBytes).toBe((4 * n) / 4);
    expect((await plan(1, 2)).optimizerBytes).toBe(z1.optimizerBytes);
    expect((await plan(2, 4)).optimizerBytes).toBe(z2.optimizerBytes);
    expect((await plan(2, 4)).gradientBytes).toBe(z2.gradientBytes);
    // during the backward: ZeRO 1 has every gradient unreduced at once; ZeRO 2 two buckets (one being reduced while the
    // next is completed): here the buckets are [final norm, layer 1] and [layer 0] (a quarter of the layers' parameters
    // fills a bucket), and the 264 × 32 embedding's own is smaller
    const layer = (n - 32 - 264 * 32) / 2;
    expect(z1.gradientInFlightBytes).toBe(4 * n);
    expect(z2.gradientInFlightBytes).toBe(4 * (32 + 2 * layer));
    expect(z2.gradientInFlightBytes).toBeLessThan(z1.gradientInFlightBytes!);
    expect((await plan(2, 4)).gradientInFlightBytes).toBe(z2.gradientInFlightBytes);
  });

  it('checkpoints hold one optimizer shard per rank, and resume in another layout (and in one process) with the same losses', () => {
    const out = path.join(tmp, 'sharded');
    const common = ['--microbatches', '4', '--set', 'train.checkpointEvery=2', '--set', 'train.decaySteps=400'];
    const r = train(['--steps', '2', '--out', out, '--dp', '2', '--zero', '2', ...common]);
    expect(r.code, r.err).toBe(0);
    const ckpt = path.join(
      out,
      readdirSync(out)
        .filter((d) => /^checkpoint-\d+$/.test(d))
        .sort()
        .pop()!,
    );
    const files = readdirSync(ckpt).sort();
    expect(files.filter((f) => f.startsWith('optimizer'))).toEqual([
      'optimizer-00000-of-00002.safetensors',
      'optimizer-00001-of-00002.safetensors',
    ]);
    expect(readdirSync(out).filter((d) => d.endsWith('.shards'))).toEqual([]); // moved into the checkpoint, nothing left behind
    const reference = path.join(tmp, 'sharded-ref');
    expect(train(['--steps', '4', '--out', reference, ...common]).code).toBe(0);
    for (const [name, flags] of [
      ['dp4-z1', ['--dp', '4', '--zero', '1']],
      ['single', []],
    ] as const) {
      const copy = path.join(tmp, `sharded-${name}`);
      const resumed = train(['--steps', '4', '--out', copy, '--resume', ckpt, ...flags, ...common]);
      expect(resumed.code, resumed.err).toBe(0);
      expectClose(losses(copy).slice(-2), losses(reference).slice(2));
    }
    // a missing shard is a one-line error naming it
    const broken = path.join(tmp, 'sharded-broken');
    cpSync(ckpt, broken, { recursive: true });
    rmSync(path.join(broken, 'optimizer-00001-of-00002.safetensors'));
    const bad = train(['--steps', '4', '--out', path.join(tmp, 'sharded-bad'), '--resume', broken, ...common]);
    expect(bad.code).not.toBe(0);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect(bad.err).toMatch(/optimizer-00001-of-00002\.safetensors is missing/);
  });

  it('bad input is a one-line error: --dp not dividing M, a world of another size, a rank with another config, a port in use', async () => {
    const r = train(['--steps', '1', '--microbatches', '4', '--out', path.join(tmp, 'bad'), '--dp', '3']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(
      /--dp 3 does not divide the step's 4 micro-batches \(--microbatches M, or train.gradAccumulation\): each data-parallel rank runs M\/D of them; give --microbatches 3 or a multiple of it/,
    );
    // launched as 2 ranks but told --dp 3
    const port = await freePort();
    const launch = spawnSync(
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
        '1',
        '--microbatches',
        '4',
        '--out',
        path.join(tmp, 'bad2'),
        '--dp',
        '3',
      ],
      { encoding: 'utf8', env },
    );
    expect(launch.status).not.toBe(0);
    expect(launch.stderr).toMatch(/the world has 2 ranks but --dp is 3/);
    // two ranks that disagree on the config: both refuse with the same line
    const port2 = await freePort();
    const ranks = await Promise.all(
      ['3e-3', '1e-3'].map(
        (lr, rank) =>
          new Promise<{ code: number | null; err: string }>((resolve) => {
            const p = spawn(
              process.execPath,
              [
                bin,
                'train',
                ...tiny,
                '--set',
                `train.lr=${lr}`,
                '--steps',
                '1',
                '--microbatches',
                '4',
                '--out',
                path.join(tmp, `bad3-${rank}`),
                '--dp',
                '2',
              ],
              {
                env: {
                  ...env,
                  RANK: String(rank),
                  WORLD_SIZE: '2',
                  MASTER_ADDR: '127.0.0.1',
                  MASTER_PORT: String(port2),
                },
              },
            );
            let err = '';
            p.stderr.on('data', (d) => (err += d));
            p.on('close', (code) => resolve({ code, err }));
          }),
      ),
    );
    for (const r2 of ranks) {
      expect(r2.code).not.toBe(0);
      expect(r2.err).toMatch(/config/i);
    }
    // the rendezvous port is taken
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r3) => blocker.once('listening', r3));
    const taken = (blocker.address() as net.AddressInfo).port;
    const busy = train(['--steps', '1', '--microbatches', '4', '--out', path.join(tmp, 'bad4'), '--dp', '2'], {
      RANK: '0',
      WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(taken),
    });
    const alone = train(['--steps', '1', '--microbatches', '4', '--out', path.join(tmp, 'bad5'), '--dp', '1'], {
      RANK: '0',
      WORLD_SIZE: '1',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(taken),
    });
    blocker.close();
    expect(busy.code).not.toBe(0);
    expect(busy.err.trim()).toMatch(new RegExp(`^error: MASTER_PORT ${taken} is already in use[^\n]*$`));
    expect(alone.code, alone.err).toBe(0); // a world of one needs no rendezvous
  });
});

describe('a rank that dies', () => {
  it('SIGKILL of one rank mid-run: the others exit non-zero naming it, yuan launch fails, --resume continues with the same losses', async () => {
    const out = path.join(tmp, 'killed');
    const port = await freePort();
    // the cosine decays to step 400 in every run here, so a run asked for fewer steps has the same schedule
    const args = [
      '--microbatches',
      '3',
      '--dp',
      '3',
      '--zero',
      '1',
      '--set',
      'train.checkpointEvery=2',
      '--set',
      'train.decaySteps=400',
      '--timeout',
      '20',
    ];
    const launch = spawn(
      process.execPath,
      [
        bin,
        'launch',
        '--nproc',
        '3',
        '--master-port',
        String(port),
        '--',
        process.execPath,
        bin,
        'train',
        ...tiny,
        '--steps',
        '400',
        '--out',
        out,
        ...args,
      ],
      { env },
    );
    let err = '';
    launch.stderr.on('data', (d) => (err += d));
    launch.stdout.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => launch.on('close', (code) => resolve(code)));
    // wait for the first complete checkpoint, then kill rank 1 (found by its environment)
    const deadline = Date.now() + 120_000;
    while (!(existsSync(out) && readdirSync(out).some((d) => /^checkpoint-\d+$/.test(d))) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const victim = rankPid(out, 1);
    expect(victim).toBeDefined();
    const killedAt = Date.now();
    process.kill(victim!, 'SIGKILL');
    const code = await exited;
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(code).not.toBe(0);
    expect(err).toMatch(/rank 1/);
    // resume from the last complete checkpoint: the same losses as an uninterrupted run
    const done = metrics(out).filter((m) => m.loss !== undefined).length;
    const target = Math.max(done + 2, 6);
    const resumed = train([
      '--steps',
      String(target),
      '--out',
      out,
      '--resume',
      out,
      '--microbatches',
      '3',
      '--dp',
      '3',
      '--zero',
      '1',
      '--set',
      'train.decaySteps=400',
    ]);
    expect(resumed.code, resumed.err).toBe(0);
    const reference = path.join(tmp, 'uninterrupted');
    expect(
      train([
        '--steps',
        String(target),
        '--out',
        reference,
        '--microbatches',
        '3',
        '--set',
        'train.checkpointEvery=2',
        '--set',
        'train.decaySteps=400',
      ]).code,
    ).toBe(0);
    expectClose(losses(out), losses(reference));
  });

  it('SIGKILL of a rank under ZeRO 2 (bucket reductions in flight): one error line per rank, no stack trace', async () => {
    const out = path.join(tmp, 'killed-z2');
    const port = await freePort();
    const launch = spawn(
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
        '400',
        '--out',
        out,
        '--microbatches',
        '4',
        '--dp',
        '2',
        '--zero',
        '2',
        '--timeout',
        '20',
      ],
      { env },
    );
    let err = '';
    launch.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => launch.on('close', (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    const stepsDone = () =>
      existsSync(path.join(out, 'metrics.jsonl'))
        ? readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').length - 1
        : 0;
    while (stepsDone() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const victim = rankPid(out, 1);
    expect(victim).toBeDefined();
    process.kill(victim!, 'SIGKILL');
    expect(await exited).not.toBe(0);
    const rank0 = err.split('\n').filter((l) => l.startsWith('[rank 0]'));
    expect(rank0.filter((l) => /error/i.test(l))).toEqual([expect.stringMatching(/^\[rank 0\] error: rank 1 is lost/)]);
    expect(err).not.toMatch(/^\[rank \d\]\s+at /m);
    expect(err).not.toMatch(/Node\.js v\d/);
  });
});

describe('ranks as separate processes', () => {
  it('yuan launch --nproc 4 -- yuan train --dp 4 --zero 2 on loopback gives the single-process losses and parameters', async () => {
    const out = path.join(tmp, 'launch4');
    const port = await freePort();
    const r = spawnSync(
      process.execPath,
      [
        bin,
        'launch',
        '--nproc',
        '4',
        '--master-port',
        String(port),
        '--',
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
        '--dp',
        '4',
        '--zero',
        '2',
      ],
      { encoding: 'utf8', env, timeout: 300_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expectClose(losses(out), single);
    expect(maxDiff(weights(out), singleWeights)).toBeLessThan(1e-5);
  });

  const netns = netnsReason();
  if (netns) console.warn(`skipped: ${netns}`);
  it.skipIf(!!netns)(
    `two ranks in separate network namespaces, each with its own address, train as one process does${netns ? ` (skipped: ${netns})` : ''}`,
    async () => {
      const tag = (process.pid % 10000).toString();
      const ns = [`yuantr-a${tag}`, `yuantr-b${tag}`];
      const addr = ['10.231.78.1', '10.231.78.2'];
      const sh = (cmd: string) => {
        const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
      };
      const out = path.join(tmp, 'netns');
      try {
        sh(`ip netns add ${ns[0]} && ip netns add ${ns[1]}`);
        sh(`ip link add ta${tag} netns ${ns[0]} type veth peer name tb${tag} netns ${ns[1]}`);
        for (let i = 0; i < 2; i++) {
          const dev = i === 0 ? `ta${tag}` : `tb${tag}`;
          sh(
            `ip -n ${ns[i]} addr add ${addr[i]}/24 dev ${dev} && ip -n ${ns[i]} link set ${dev} up && ip -n ${ns[i]} link set lo up`,
          );
        }
        const ranks = await Promise.all(
          [0, 1].map(
            (rank) =>
              new Promise<{ code: number | null; err: string }>((resolve) => {
                const p = spawn(
                  'ip',
                  [
                    'netns',
                    'exec',
                    ns[rank],
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
                    '--dp',
                    '2',
                    '--zero',
                    '1',
                    '--timeout',
                    '60',
                  ],
                  {
                    env: { ...env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: addr[0], MASTER_PORT: '29556' },
                  },
                );
                let err = '';
                p.stderr.on('data', (d) => (err += d));
                p.on('close', (code) => resolve({ code, err }));
              }),
          ),
        );
        for (const r of ranks) expect(r.code, r.err).toBe(0);
        expectClose(losses(out), single);
      } finally {
        spawnSync('sh', ['-c', `ip netns del ${ns[0]}; ip netns del ${ns[1]}`]);
      }
    },
  );
});

function netnsReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns)';
  const probe = `yuantr-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error) return `ip (iproute2) is not available: ${r.error.message}`;
  if (r.status !== 0) return `ip netns add is not allowed here: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

const slurm = slurmCluster('dp');

describe('a real SLURM cluster (one node on this machine)', () => {
  it.skipIf(!!slurm.reason)(
    `srun -n 2 yuan train --dp 2 gives the single-process losses${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
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
          '--dp',
          '2',
          '--zero',
          '1',
        ],
        {
          encoding: 'utf8',
          env: { ...env, SLURM_CONF: slurm.conf, MASTER_PORT: String(port) },
          timeout: 300_000,
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expectClose(losses(out), single);
    },
  );

  it.skipIf(!!slurm.reason)(
    `the sbatch script of yuan launch --print slurm: rank 1 SIGKILLed while rank 0 is busy, rank 0's "rank 1 is lost" line reaches the job's output and the job fails${slurm.reason ? ` (skipped: ${slurm.reason})` : ''}`,
    async () => {
      const out = path.join(tmp, 'sbatch');
      const jobDir = path.join(tmp, 'sbatch-job');
      mkdirSync(jobDir);
      const script = path.join(jobDir, 'train.sh');
      const printed = await yuan(
        'launch',
        '--print',
        'slurm',
        '--nproc',
        '2',
        '--name',
        'train',
        '--master-port',
        String(await freePort()),
        '--out',
        script,
        '--',
        process.execPath,
        bin,
        'train',
        ...tiny,
        '--steps',
        '400',
        '--microbatches',
        '4',
        '--out',
        out,
        '--dp',
        '2',
        '--zero',
        '1',
      );
      expect(printed.code, printed.err).toBe(0);
      const slurmEnv = { ...env, SLURM_CONF: slurm.conf };
      // --time: SLURM ends the job itself should this test's own guards fail to
      const sub = spawnSync('sbatch', ['--parsable', '--time=3', script], {
        cwd: jobDir,
        env: slurmEnv,
        encoding: 'utf8',
      });
      expect(sub.status, sub.stderr).toBe(0);
      const id = sub.stdout.trim().split(';')[0];
      const state = () =>
        /JobState=(\S+)/.exec(
          spawnSync('scontrol', ['show', 'job', '-o', id], { env: slurmEnv, encoding: 'utf8' }).stdout,
        )?.[1] ?? '';
      const ended = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$/;
      try {
        // both ranks are mid-run once two steps are logged
        const deadline = Date.now() + 120_000;
        const stepsDone = () =>
          existsSync(path.join(out, 'metrics.jsonl'))
            ? readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').length - 1
            : 0;
        while (stepsDone() < 2 && Date.now() < deadline && !ended.test(state()))
          await new Promise((r) => setTimeout(r, 100));
        const survivor = rankPid(out, 0, 'SLURM_PROCID');
        const victim = rankPid(out, 1, 'SLURM_PROCID');
        expect(survivor, `job state ${state()}`).toBeDefined();
        expect(victim).toBeDefined();
        // rank 0 is inside a long computation when rank 1 dies (stopped for 3 s): under srun --kill-on-bad-exit=1 SLURM
        // killed it before it could read the news, and the job's output said only "task 1: Killed"
        process.kill(survivor!, 'SIGSTOP');
        process.kill(victim!, 'SIGKILL');
        const killedAt = Date.now();
        await new Promise((r) => setTimeout(r, 3000));
        try {
          process.kill(survivor!, 'SIGCONT');
        } catch {
          // SLURM killed it meanwhile; the output below tells
        }
        let s = state();
        // a hang guard, not a timing test
        while (!ended.test(s) && Date.now() - killedAt < 60_000) {
          await new Promise((r) => setTimeout(r, 200));
          s = state();
        }
        const log = readFileSync(path.join(jobDir, `train-${id}.out`), 'utf8');
        expect(s, log).toBe('FAILED');
        expect(log).toMatch(/^error: rank 1 is lost: its connection to rank 0 closed without a goodbye/m);
        expect(log).toMatch(/task 1: Killed/);
        // rank 0 ended by itself: srun did not have to stop it
        expect(log).not.toMatch(/First task exited/);
      } finally {
        if (!ended.test(state())) spawnSync('scancel', [id], { env: slurmEnv });
      }
    },
  );
});
