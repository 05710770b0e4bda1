import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { YuanError } from '@yuan/core';
import { DEFAULT_MASTER_PORT } from './env.js';
import { rootCauseFirst } from './errors.js';

/** What `launchLocal` starts: `nproc` ranks of `command` on this node of `nnodes`, torchrun's variables set. */
export interface LaunchOptions {
  /** Processes on this node (each one rank). */
  nproc: number;
  /** Nodes in the job. Default 1. */
  nnodes?: number;
  /** This node's index, 0 … nnodes − 1; its ranks are nodeRank·nproc … nodeRank·nproc + nproc − 1. Default 0. */
  nodeRank?: number;
  /** Rank 0's host. Default 127.0.0.1. */
  masterAddr?: string;
  /** Rank 0's rendezvous port. Default 29500. */
  masterPort?: number;
  /** The program and its arguments, run once per rank. */
  command: string[];
  /** Base environment of the ranks. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** After the first rank fails, how long the others get to stop by themselves before SIGTERM (then SIGKILL 5 s later), ms. Default 10 000. */
  graceMs?: number;
  /** Receives each output line of each rank. Default: written to this process's stdout/stderr as `[rank N] line`. */
  onLine?: (rank: number, stream: 'stdout' | 'stderr', line: string) => void;
}

/** How a launch ended. */
export interface LaunchResult {
  /** 0 when every rank exited 0; else the root-cause rank's exit code (128 + signal number for a signal), at least 1. */
  code: number;
  /** Failed ranks, the root cause first (a rank others report lost comes before them), each with a one-line message. */
  failures: { rank: number; message: string }[];
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
  SIGABRT: 6,
};

/** Checks launch options; a bad one is a usage error naming it. */
function checkLaunch(o: LaunchOptions): Required<Omit<LaunchOptions, 'env' | 'onLine'>> {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const masterPort = o.masterPort ?? DEFAULT_MASTER_PORT;
  if (!Number.isInteger(o.nproc) || o.nproc < 1)
    throw new YuanError('usage', `--nproc ${o.nproc} is not a positive integer`);
  if (!Number.isInteger(nnodes) || nnodes < 1)
    throw new YuanError('usage', `--nnodes ${nnodes} is not a positive integer`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes)
    throw new YuanError('usage', `--node-rank ${nodeRank} is not in 0..${nnodes - 1}`);
  if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535)
    throw new YuanError('usage', `--master-port ${masterPort} is not a port (1..65535)`);
  if (!Array.isArray(o.command) || o.command.length === 0)
    throw new YuanError('usage', 'no command to launch (give it after --)');
  return {
    nproc: o.nproc,
    nnodes,
    nodeRank,
    masterAddr: o.masterAddr ?? '127.0.0.1',
    masterPort,
    command: o.command,
    graceMs: o.graceMs ?? 10_000,
  };
}

/** A stderr line that says why a process failed: `error: …`, `TypeError: …`, `ValueError: …`, `fatal …`, `panic: …`. */
const FAILURE_LINE = /^(\w*(error|exception)\b|fatal\b|panic\b|aborted\b|killed\b)/i;

/**
 * torchrun's role on one node: starts `nproc` child processes of `command` with `RANK`, `WORLD_SIZE`,
 * `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `GROUP_RANK` (the node rank), `MASTER_ADDR` and `MASTER_PORT` set, forwards
 * their output line by line prefixed with the rank, and when one exits non-zero gives the others `graceMs` to fail
 * on their own (they name the lost rank), then SIGTERM, then SIGKILL. SIGINT/SIGTERM to this process are passed
 * on. Resolves when every child has exited; never rejects for a child's failure (see `LaunchResult`).
 */
export function launchLocal(opts: LaunchOptions): Promise<LaunchResult> {
  const o = checkLaunch(opts);
  const worldSize = o.nproc * o.nnodes;
  const onLine =
    opts.onLine ??
    ((rank: number, stream: 'stdout' | 'stderr', line: string) =>
      (stream === 'stdout' ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`));
  return new Promise((resolve) => {
    const children = new Map<number, ChildProcess>();
    const lastErr = new Map<number, string>();
    const failures: { rank: number; message: string; code: number }[] = [];
    let stopTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    /** Ranks this launcher signalled after the grace period (their signal is ours, not their failure's cause). */
    const stoppedByUs = new Set<number>();
    const stopAll = (signal: NodeJS.Signals, ours = true) => {
      for (const [rank, c] of children) {
        if (ours) stoppedByUs.add(rank);
        c.kill(signal);
      }
    };
    const startStopping = () => {
      if (stopTimer) return;
      stopTimer = setTimeout(() => {
        stopAll('SIGTERM');
        killTimer = setTimeout(() => stopAll('SIGKILL'), 5000);
      }, o.graceMs);
    };
    const onSignal = (sig: NodeJS.Signals) => {
      stopAll(sig, false);
      startStopping();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const finish = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      clearTimeout(stopTimer);
      clearTimeout(killTimer);
      const ordered = rootCauseFirst(failures);
      resolve({
        code: ordered.length ? Math.max(1, ordered[0]!.code) : 0,
        failures: ordered.map(({ rank, message }) => ({ rank, message })),
      });
    };
    let running = o.nproc;
    for (let local = 0; local < o.nproc; local++) {
      const rank = o.nodeRank * o.nproc + local;
      const env = {
        ...(opts.env ?? process.env),
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(o.nproc),
        GROUP_RANK: String(o.nodeRank),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(o.masterPort),
      };
      const child = spawn(o.command[0]!, o.command.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.set(rank, child);
      const lines = (stream: 'stdout' | 'stderr') => {
        const rl = createInterface({ input: child[stream]!, crlfDelay: Infinity });
        rl.on('line', (line) => {
          // the reason a rank gives: its last `error: …` line on stderr, else its last line that reads like a failure
          // (an exception, a fatal message); progress lines are never a reason
          const t = line.trim();
          if (
            stream === 'stderr' &&
            (/^error\b/i.test(t) || (FAILURE_LINE.test(t) && !/^error\b/i.test(lastErr.get(rank) ?? '')))
          )
            lastErr.set(rank, t);
          onLine(rank, stream, line);
        });
        return new Promise<void>((r) => rl.once('close', () => r()));
      };
      const drained = Promise.all([lines('stdout'), lines('stderr')]);
      let spawnError: string | undefined;
      child.on('error', (e) => (spawnError = `could not start ${o.command[0]}: ${e.message}`));
      child.on('close', (code, signal) => {
        void drained.then(() => {
          children.delete(rank);
          if (code !== 0 || signal) {
            const how =
              spawnError ??
              (signal && stoppedByUs.has(rank)
                ? `was stopped by the launcher (${signal})${failures.length ? ` ${(o.graceMs + (signal === 'SIGKILL' ? 5000 : 0)) / 1000} s after another rank failed` : ''}`
                : signal
                  ? `exited with signal ${signal}`
                  : `exited with code ${code}`);
            // a rank this launcher stopped had no say: its last output line is not the reason (a rank that died of its own
            // signal, SIGABRT or SIGSEGV, may have said why)
            const last = stoppedByUs.has(rank) ? undefined : lastErr.get(rank);
            failures.push({
              rank,
              message: last && !spawnError ? `${how}: ${last}` : how,
              code: signal ? 128 + (SIGNALS[signal] ?? 0) : (code ?? 1),
            });
            startStopping();
          }
          if (--running === 0) finish();
        });
      });
    }
  });
}

/** Quotes a word for a POSIX shell. */
function shq(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Options of the multi-host job files. */
export interface JobFileOptions {
  nproc: number;
  nnodes: number;
  masterPort?: number;
  command: string[];
  /** Job name (SLURM job, Kubernetes Job and Service prefix). Default `yuan`. */
  name?: string;
  /** Container image (Kubernetes) with `yuan` on its PATH; required for `kubernetesManifest`. */
  image?: string;
  /**
   * SLURM: seconds the other ranks get, after the first rank ends, to end by themselves (a survivor notices a lost
   * peer at its next exchange and prints "rank N is lost: …") before srun kills them (`srun --wait`); rounded up to
   * whole seconds. 0: srun kills them as soon as one rank fails (`--kill-on-bad-exit=1`; their reasons may be lost).
   * Default 60, `yuan train`'s default `--timeout`: a healthy rank reaches its next exchange, and rank 0 saves a
   * checkpoint, within it; raise both together.
   */
  graceSeconds?: number;
}

/** `slurmScript`'s default `graceSeconds`. */
const SLURM_GRACE_S = 60;

/**
 * An `sbatch` script for `nnodes` × `nproc` ranks: one SLURM task per rank (`srun`), each finding its rank from
 * SLURM's variables (`rankFromEnvironment`), rank 0 on the first host of the allocation. When a rank fails, srun
 * lets the others end by themselves for `graceSeconds` (so their "rank N is lost: …" line reaches the job's output
 * file), then kills them; the job fails. Throws a usage error for bad options (see `launchLocal`) or a bad grace.
 */
export function slurmScript(o: JobFileOptions): string {
  checkLaunch({ nproc: o.nproc, nnodes: o.nnodes, masterPort: o.masterPort, command: o.command });
  const grace = o.graceSeconds ?? SLURM_GRACE_S;
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0)
    throw new YuanError('usage', `--grace ${grace} is not a number of seconds >= 0`);
  const name = o.name ?? 'yuan';
  // Why not `srun --kill-on-bad-exit=1`: at the first bad exit srun cancels the step, SIGTERM to every other task at
  // once (SIGKILL after the cluster's KillWait), and SIGTERM ends a Node.js rank on the spot, silently. A rank that was
  // SIGKILLed cannot say why, so the only ranks that could (the survivors, which find it lost at their next exchange,
  // maybe seconds away inside a long kernel) die first and the log says only "task 1: Killed". Handling SIGTERM in
  // every command would not fix it either: a rank inside a kernel sees neither the signal nor the lost peer until the
  // kernel returns, and KillWait is the cluster's, not ours. So srun waits (--kill-on-bad-exit=0) and the survivors
  // fail the ordinary way, their collective naming the lost rank within the collective timeout (a dead peer is an
  // error, never a hang); --wait bounds the rest: srun SIGKILLs whatever still runs `grace` s after the first task
  // ended. A finished run's ranks end together, but for rank 0 saving the last checkpoint after the others left: the
  // default grace gives that save what `yuan train`'s default --timeout gives a save mid-run (the others wait for it).
  const srun = grace === 0 ? 'srun --kill-on-bad-exit=1' : `srun --kill-on-bad-exit=0 --wait=${Math.ceil(grace)}`;
  return [
    '#!/bin/bash',
    `#SBATCH --job-name=${name}`,
    `#SBATCH --nodes=${o.nnodes}`,
    `#SBATCH --ntasks-per-node=${o.nproc}`,
    `#SBATCH --output=${name}-%j.out`,
    '# Written by `yuan launch --print slurm`. Each task is one rank: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID.',
    'set -euo pipefail',
    'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
    `export MASTER_PORT=${o.masterPort ?? DEFAULT_MASTER_PORT}`,
    grace === 0
      ? '# When a rank fails, srun kills the others at once (yuan launch --grace 0); only the failed rank may have said why.'
      : `# When a rank fails, the others find it lost and print "rank N is lost: ..." before they exit; srun kills any rank\n# still running ${Math.ceil(grace)} s after the first one ended (yuan launch --grace S).`,
    `${srun} ${o.command.map(shq).join(' ')}`,
    '',
  ].join('\n');
}

/**
 * A Kubernetes headless Service + indexed Job (one pod per node, `JOB_COMPLETION_INDEX` = node rank) for
 * `nnodes` × `nproc` ranks. With nproc 1 each pod runs the command as one rank (rank = JOB_COMPLETION_INDEX);
 * otherwise each pod runs `yuan launch --nproc N --nnodes K --node-rank $(JOB_COMPLETION_INDEX)`. Rank 0 is pod
 * `<name>-0` reached through the Service as `<name>-0.<name>`.
 */
export function kubernetesManifest(o: JobFileOptions): string {
  checkLaunch({ nproc: o.nproc, nnodes: o.nnodes, masterPort: o.masterPort, command: o.command });
  const name = o.name ?? 'yuan';
  if (!o.image)
    throw new YuanError(
      'usage',
      '--print k8s needs --image IMAGE: a container image with yuan installed (its command runs `yuan …`)',
    );
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
    throw new YuanError('usage', `--name "${name}" is not a Kubernetes name (lower-case letters, digits, "-")`);
  const port = o.masterPort ?? DEFAULT_MASTER_PORT;
  const master = `${name}-0.${name}`;
  const cmd =
    o.nproc === 1
      ? o.command
      : [
          'sh',
          '-c',
          `exec yuan launch --nproc ${o.nproc} --nnodes ${o.nnodes} --node-rank "$JOB_COMPLETION_INDEX" --master-addr ${master} --master-port ${port} -- ${o.command.map(shq).join(' ')}`,
        ];
  const y = (s: string) => JSON.stringify(s);
  return [
    '# Written by `yuan launch --print k8s`: a headless Service so pods resolve each other, and an indexed Job.',
    "# Checkpoints: every rank writes its optimizer shard under the command's --out, so mount one volume that all pods",
    '# share there (a ReadWriteMany PersistentVolumeClaim under volumes: and volumeMounts:) before applying this.',
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  clusterIP: None',
    '  selector:',
    `    job-name: ${name}`,
    '  ports:',
    `    - name: rendezvous`,
    `      port: ${port}`,
    '---',
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  completionMode: Indexed',
    `  completions: ${o.nnodes}`,
    `  parallelism: ${o.nnodes}`,
    '  backoffLimit: 0',
    '  template:',
    '    spec:',
    `      subdomain: ${name}`,
    '      restartPolicy: Never',
    '      containers:',
    '        - name: rank',
    `          image: ${y(o.image)}`,
    `          command: [${cmd.map(y).join(', ')}]`,
    '          env:',
    `            - { name: WORLD_SIZE, value: ${y(String(o.nnodes * o.nproc))} }`,
    `            - { name: MASTER_ADDR, value: ${y(master)} }`,
    `            - { name: MASTER_PORT, value: ${y(String(port))} }`,
    '          ports:',
    `            - containerPort: ${port}`,
    '',
  ].join('\n');
}
