import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { YuanError, type YuanConfig } from '@yuan/core';
import type { RunResult } from '@yuan/model';
import { YUAN_VERSION, type CommandIO } from '../command.js';

/** What every rank of a data-parallel run is given (JSON: it crosses threads and processes). */
export interface RankPayload {
  config: YuanConfig;
  data: string;
  steps: number;
  out: string;
  seed: number;
  zero: 0 | 1 | 2;
  dp: number;
  metrics?: string;
  resume?: string;
  backend?: string;
  /** Seconds a rank waits for a silent peer before failing (names the rank). */
  timeoutSeconds: number;
  /** The pipeline flags (`--pp P` > 1 with `--schedule`, `--partition`, `--recompute`): each rank runs a P-stage pipeline. */
  pipeline?: Record<string, string | undefined>;
  /** Worker-thread ranks: the first of P consecutive loopback ports of the stages' data-parallel groups (tcp ranks use MASTER_PORT + 1 …). */
  stagePort?: number;
}

/** A hash of everything the ranks must agree on; exchanged at start-up so a rank with another config is refused. */
export function configHash(p: RankPayload): string {
  const { config, data, steps, seed, zero, dp, pipeline } = p;
  return createHash('sha256').update(JSON.stringify({ config, data: path.resolve(data), steps, seed, zero, dp, pipeline })).digest('hex').slice(0, 16);
}

/**
 * Runs one data-parallel rank: joins the process group (threads: from the worker's data; tcp: from the environment,
 * as torchrun, SLURM or a Kubernetes indexed Job set it), then the library training loop over the ZeRO engine. Rank 0
 * writes metrics and checkpoints and prints progress. Returns the run's result (on every rank).
 */
export async function runRank(payload: RankPayload, transport: 'threads' | 'tcp', io?: CommandIO): Promise<RunResult> {
  const [{ createProcessGroup, dataParallelEngine, rankFromEnvironment }, { runTraining, attentionLookup }, { initBackend }, { loadRegistry }] = await Promise.all([
    import('@yuan/parallel-zero'),
    import('@yuan/model'),
    import('@yuan/tensor'),
    import('../context.js'),
  ]);
  const registry = await loadRegistry({}, payload.config);
  await initBackend(payload.backend);
  const group = await createProcessGroup({ transport, registry, configHash: configHash(payload), codeVersion: `yuan ${YUAN_VERSION}`, timeoutMs: payload.timeoutSeconds * 1000 });
  try {
    if (group.size !== payload.dp) {
      throw new YuanError('usage', `the world has ${group.size} ranks but --dp is ${payload.dp}: start as many ranks as --dp (or leave --dp out)`);
    }
    const write = (text: string) => (io ? io.err(text) : process.stderr.write(`${text}\n`));
    let engine = dataParallelEngine({ group, zero: payload.zero });
    if (payload.pipeline && Number(payload.pipeline.pp ?? 1) > 1) {
      // P × D: this rank runs a P-stage pipeline; stage s of every rank reduces its gradients in a group of its own
      const { engineFromFlags } = await import('../commands/train.js');
      const env = transport === 'tcp' ? rankFromEnvironment() : undefined;
      const basePort = payload.stagePort ?? (env ? env.masterPort + 1 : undefined);
      if (basePort === undefined) throw new YuanError('usage', 'no port for the stages\' data-parallel groups (set MASTER_PORT)');
      const note = group.rank === 0 ? write : () => {};
      engine = await engineFromFlags(payload.pipeline, payload.config, registry, note, {
        group,
        zero: payload.zero,
        basePort,
        masterAddr: env?.masterAddr ?? '127.0.0.1',
        timeoutMs: payload.timeoutSeconds * 1000,
        configHash: configHash(payload),
      });
    }
    const every = Math.max(1, Math.round(payload.steps / 20));
    return await runTraining({
      config: payload.config,
      lookup: attentionLookup(registry),
      data: payload.data,
      steps: payload.steps,
      out: payload.out,
      seed: payload.seed,
      metrics: payload.metrics,
      resume: payload.resume,
      backend: payload.backend,
      engine,
      onStep: (step, total, status) => {
        if (step % every === 0 || step === total) write(`${step}/${total} ${status}`);
      },
      onNote: write,
    });
  } finally {
    await group.close();
  }
}

/** True when the environment makes this process one rank of a launched job (torchrun, `yuan launch`, srun, an indexed Job). */
export function launchedAsRank(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.RANK !== undefined && env.WORLD_SIZE !== undefined) return true;
  if (env.SLURM_PROCID !== undefined && Number(env.SLURM_NTASKS ?? env.SLURM_NPROCS ?? 1) > 1) return true;
  return env.JOB_COMPLETION_INDEX !== undefined && env.WORLD_SIZE !== undefined;
}

/**
 * `yuan train --dp D`: in a launched job this process is one rank (tcp); otherwise it starts the D ranks itself, as
 * worker threads (`--transport threads`, default; one BLAS thread each) or as local processes talking TCP on loopback
 * (`--transport tcp`, re-running this command once per rank with torchrun's variables). Every rank's failure is
 * reported; the first one is the error.
 */
export async function trainDataParallel(io: CommandIO, payload: RankPayload, transport: 'threads' | 'tcp', argv: string[]): Promise<RunResult> {
  if (launchedAsRank()) return runRank(payload, 'tcp', io);
  const { spawnThreadRanks, launchLocal } = await import('@yuan/parallel-zero');
  if (transport === 'threads') {
    if (payload.pipeline) payload = { ...payload, stagePort: 20000 + Math.floor(Math.random() * 20000) };
    const worker = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'training', 'rank-worker.js'));
    const results = await spawnThreadRanks(worker, payload.dp, payload, {
      timeoutMs: payload.timeoutSeconds * 1000,
      workerOptions: { env: { ...process.env, YUAN_NATIVE_THREADS: process.env.YUAN_NATIVE_THREADS ?? '1' } },
    });
    return results[0] as RunResult;
  }
  // with --pp P the stages' data-parallel groups use the P ports after MASTER_PORT
  const port = 20000 + Math.floor(Math.random() * 20000);
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bin.js');
  const lines: string[] = [];
  const r = await launchLocal({
    nproc: payload.dp,
    masterPort: port,
    command: [process.execPath, bin, ...argv, '--json'],
    env: { ...process.env, YUAN_NATIVE_THREADS: process.env.YUAN_NATIVE_THREADS ?? '1' },
    onLine: (rank, stream, line) => {
      if (rank === 0 && stream === 'stdout') lines.push(line);
      else if (stream === 'stderr' && (rank === 0 || /error/i.test(line))) io.err(rank === 0 ? line : `[rank ${rank}] ${line}`);
    },
  });
  if (r.code !== 0) {
    const first = r.failures[0];
    throw new YuanError('rank', `data-parallel rank ${first?.rank ?? '?'} failed: ${first?.message ?? `exit code ${r.code}`}`);
  }
  const last = lines.filter((l) => l.startsWith('{')).pop();
  if (!last) throw new YuanError('rank', 'rank 0 printed no result');
  return JSON.parse(last) as RunResult;
}
