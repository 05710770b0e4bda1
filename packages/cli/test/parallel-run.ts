// Helpers of the parallel-training CLI tests: read a run's metrics and final weights, compare them with a reference.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, expect } from 'vitest';
import { repoRoot } from './run.js';

/** One line of a run's metrics.jsonl. */
export type Metric = {
  step: number;
  loss?: number;
  gradNorm?: number;
  validLoss?: number;
  optimizerBytes?: number;
  gradientBytes?: number;
  gradientInFlightBytes?: number;
  /** Decoder-layer forwards of the step, summed over the ranks (each recomputed layer counts again). */
  layerForwards?: number;
};

/** Every line of OUT/metrics.jsonl. */
export const metrics = (dir: string): Metric[] =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

/** The values of one metric in step order (the lines that have it). */
export const series = (dir: string, key: 'loss' | 'gradNorm' | 'validLoss'): number[] =>
  metrics(dir)
    .filter((m) => m[key] !== undefined)
    .map((m) => m[key]!);

/** Asserts `got` equals `want` element by element within 1e-4 relative (the issue's tolerance for parallel runs). */
export function expectClose(got: number[], want: number[]): void {
  expect(got).toHaveLength(want.length);
  for (const [i, w] of want.entries())
    expect(Math.abs(got[i] - w), `step ${i + 1}: ${got[i]} vs ${w}`).toBeLessThanOrEqual(1e-4 * Math.abs(w));
}

/** The final weights of a run (the newest checkpoint's model.safetensors), as one flat array in file order. */
export function weights(dir: string): Float32Array {
  const ckpt = readdirSync(dir)
    .filter((d) => d.startsWith('checkpoint-'))
    .sort()
    .pop()!;
  const buf = readFileSync(path.join(dir, ckpt, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  return new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + n, buf.byteOffset + buf.length));
}

/** The largest absolute element difference of two arrays of the same length. */
export function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A one-node SLURM cluster on this machine for one test file (`.ci/slurm-up.sh`, stopped by `.ci/slurm-down.sh` in an
 * afterAll registered here at the top level, so the daemons stop also when a filter skips the SLURM tests): the
 * SLURM_CONF to pass to srun, or the one-line reason it could not start.
 */
export function slurmCluster(name: string): { conf?: string; reason?: string } {
  const dir = `/tmp/yuan-slurm-${name}-${process.pid}`;
  let up: { conf?: string; reason?: string };
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    up = { reason: 'SLURM test needs Linux and root to start slurmctld/slurmd' };
  else {
    const r = spawnSync(path.join(repoRoot, '.ci/slurm-up.sh'), [], {
      encoding: 'utf8',
      env: { ...process.env, YUAN_SLURM_DIR: dir },
      timeout: 600_000,
    });
    const conf = /SLURM_CONF=(\S+)/.exec(r.stdout ?? '')?.[1];
    up =
      r.status === 0 && conf
        ? { conf }
        : { reason: `SLURM could not be started: ${(r.stderr ?? '').trim().split('\n').pop() || `exit ${r.status}`}` };
  }
  if (up.reason) console.warn(`skipped: ${up.reason}`);
  afterAll(() => {
    if (up.conf)
      spawnSync(path.join(repoRoot, '.ci/slurm-down.sh'), [], { env: { ...process.env, YUAN_SLURM_DIR: dir } });
  });
  return up;
}

/** The arguments of the parallel CLI tests' tiny run (2 layers, hidden 32, 16-token sequences) over the data folder `data`. */
export function tinyRun(data: string): string[] {
  return [
    '--preset',
    'tiny-lfa',
    '--set',
    'model.hiddenSize=32',
    '--set',
    'model.numLayers=2',
    '--set',
    'model.ffnSize=64',
    '--set',
    'train.seqLength=16',
    '--set',
    'train.microBatchSize=2',
    '--set',
    'train.warmupSteps=2',
    '--set',
    'train.validEvery=2',
    '--data',
    data,
    '--seed',
    '3',
  ];
}

/**
 * The pid of the Node.js process (this test's `process.execPath`) whose command line mentions `marker` (e.g. its --out
 * folder) and whose environment has `variable`=`rank` (RANK; SLURM_PROCID for a SLURM task, whose srun also has it).
 */
export function rankPid(marker: string, rank: number, variable = 'RANK'): number | undefined {
  const pid = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .find((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return (
          argv[0] === process.execPath &&
          argv.some((a) => a.includes(marker)) &&
          readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`${variable}=${rank}`)
        );
      } catch {
        return false;
      }
    });
  return pid === undefined ? undefined : Number(pid);
}

/** This process's environment for a test's ranks: one BLAS thread each, and no rank identity of its own. */
export function rankFreeEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, YUAN_NATIVE_THREADS: '1' };
  for (const k of ['RANK', 'WORLD_SIZE', 'SLURM_PROCID', 'JOB_COMPLETION_INDEX']) delete env[k];
  return env;
}

/** A fault for a pipeline stage of a `yuan train` child process (the test-only `injectStageFault` of @yuan/parallel-pipeline). */
export interface StageFault {
  stage: number;
  step: number;
  kind: 'throw' | 'exit' | 'oom';
  dataRank?: number;
}

/**
 * The environment that makes a `yuan train` child process inject `fault`: NODE_OPTIONS preloads a module (written into
 * a new folder under `dir`) that calls the test-only entry `dist/testing.js` of @yuan/parallel-pipeline, in the process, its
 * worker threads and the rank processes it starts. Shipped code reads no variable for it.
 */
export function stageFaultEnv(dir: string, fault: StageFault): Record<string, string> {
  const testing = pathToFileURL(path.join(repoRoot, 'packages/parallel-pipeline/dist/testing.js')).href;
  const preload = path.join(mkdtempSync(path.join(dir, 'fault-')), 'fault.mjs');
  writeFileSync(
    preload,
    `import { injectStageFault } from ${JSON.stringify(testing)};\ninjectStageFault(${JSON.stringify(fault)});\n`,
  );
  return {
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${pathToFileURL(preload).href}`].filter(Boolean).join(' '),
  };
}
