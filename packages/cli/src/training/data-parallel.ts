import { createHash } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { YuanError, type YuanConfig } from '@yuan/core';
import type { RunResult } from '@yuan/train';
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
  /** The pipeline flags (`--pp P` > 1 with `--schedule`, `--partition`, `--recompute`): the world is P × D ranks, each one stage. */
  pipeline?: Record<string, string | undefined>;
}

/** Ranks of the run: D, or P × D with a pipeline. */
export function worldSizeOf(p: RankPayload): number {
  return p.dp * Number(p.pipeline?.pp ?? 1);
}

/** `rank 3` of a P × D run, as `rank 3 (stage 1, data-parallel rank 1)`; plain `rank r` without a pipeline. */
function rankName(p: RankPayload, rank: number | string): string {
  return p.pipeline && typeof rank === 'number' ? `rank ${rank} (pipeline stage ${Math.floor(rank / p.dp)}, data-parallel rank ${rank % p.dp})` : `rank ${rank}`;
}

/** A hash of everything the ranks must agree on; exchanged at start-up so a rank with another config is refused. */
export function configHash(p: RankPayload): string {
  const { config, data, steps, seed, zero, dp, pipeline } = p;
  return createHash('sha256').update(JSON.stringify({ config, data: path.resolve(data), steps, seed, zero, dp, pipeline })).digest('hex').slice(0, 16);
}

/**
 * Runs one rank: joins the process group (threads: from the worker's data; tcp: from the environment, as torchrun,
 * SLURM or a Kubernetes indexed Job set it), then the library training loop over the ZeRO engine, or with a pipeline
 * over one stage of the P × D grid (`pipelineRankEngine`: global rank r is stage ⌊r / D⌋, data rank r mod D). Rank 0
 * writes metrics and checkpoints and prints progress. Returns the run's result (on every rank).
 */
export async function runRank(payload: RankPayload, transport: 'threads' | 'tcp', io?: CommandIO): Promise<RunResult> {
  const [{ createProcessGroup }, { dataParallelEngine }, { runTraining }, { attentionLookup }, { initBackend }, { loadRegistry }] = await Promise.all([
    import('@yuan/comm'),
    import('@yuan/parallel-zero'),
    import('@yuan/train'),
    import('@yuan/model'),
    import('@yuan/tensor'),
    import('../context.js'),
  ]);
  const registry = await loadRegistry({}, payload.config);
  await initBackend(payload.backend);
  const group = await createProcessGroup({ transport, registry, configHash: configHash(payload), codeVersion: `yuan ${YUAN_VERSION}`, timeoutMs: payload.timeoutSeconds * 1000 });
  try {
    if (group.size !== worldSizeOf(payload)) {
      throw new YuanError(
        'usage',
        payload.pipeline
          ? `the world has ${group.size} ranks but --pp ${payload.pipeline.pp} × --dp ${payload.dp} needs ${worldSizeOf(payload)}: WORLD_SIZE must be P × D`
          : `the world has ${group.size} ranks but --dp is ${payload.dp}: start as many ranks as --dp (or leave --dp out)`,
      );
    }
    const write = (text: string) => (io ? io.err(text) : process.stderr.write(`${text}\n`));
    let engine = dataParallelEngine({ group, zero: payload.zero });
    if (payload.pipeline) {
      // P × D: this rank runs one stage; activations go over the world's transport, stage s's D ranks reduce gradients
      const { engineFromFlags } = await import('../commands/train.js');
      const note = group.rank === 0 ? write : () => {};
      engine = await engineFromFlags(payload.pipeline, payload.config, registry, note, { world: group, dp: payload.dp, zero: payload.zero });
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
 * `yuan train --dp D` / `--pp P [--dp D] --transport …`: in a launched job this process is one rank (tcp); otherwise
 * it starts the D (or P × D) ranks itself, as worker threads (`--transport threads`, default; one BLAS thread each) or
 * as local processes talking TCP on loopback (`--transport tcp`, re-running this command once per rank with
 * torchrun's variables). Every rank's failure is reported; the root cause is the error, naming its rank (and stage).
 */
export async function trainDataParallel(io: CommandIO, payload: RankPayload, transport: 'threads' | 'tcp', argv: string[]): Promise<RunResult> {
  if (launchedAsRank()) return runRank(payload, 'tcp', io);
  const [{ spawnThreadRanks, launchLocal }, { checkTrainingData }] = await Promise.all([import('@yuan/comm'), import('@yuan/train')]);
  // bad data stops the job here, on one line, before any rank starts (every rank checks it again before its first step)
  checkTrainingData(payload.config, payload.data);
  const n = worldSizeOf(payload);
  if (transport === 'threads') {
    const worker = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'training', 'rank-worker.js'));
    try {
      const results = await spawnThreadRanks(worker, n, payload, {
        timeoutMs: payload.timeoutSeconds * 1000,
        workerOptions: { env: { ...process.env, YUAN_NATIVE_THREADS: process.env.YUAN_NATIVE_THREADS ?? '1' } },
      });
      return results[0] as RunResult;
    } catch (e) {
      const f = (e as { failures?: { rank: number; message: string }[] }).failures?.[0];
      if (!payload.pipeline || !f) throw e;
      throw new YuanError('rank', `${rankName(payload, f.rank)} failed: ${f.message}`);
    }
  }
  // a port the kernel just handed out (a random one could be taken, e.g. by another run's rendezvous)
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bin.js');
  const lines: string[] = [];
  const r = await launchLocal({
    nproc: n,
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
    const who = payload.pipeline ? rankName(payload, first?.rank ?? '?') : `data-parallel rank ${first?.rank ?? '?'}`;
    throw new YuanError('rank', `${who} failed: ${first?.message ?? `exit code ${r.code}`}`);
  }
  const last = lines.filter((l) => l.startsWith('{')).pop();
  if (!last) throw new YuanError('rank', 'rank 0 printed no result');
  return JSON.parse(last) as RunResult;
}
