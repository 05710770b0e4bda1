import { YuanError } from '@yuan/core';

/** Where a rank's identity came from. */
export type RankSource = 'torchrun' | 'slurm' | 'kubernetes' | 'none';

/** A process's place in a multi-process job, as the launcher gave it. */
export interface RankInfo {
  /** Global rank, 0 … worldSize − 1. */
  rank: number;
  /** Number of ranks in the job. */
  worldSize: number;
  /** Rank on this host (for picking a device or a core set). */
  localRank: number;
  /** Host of rank 0's rendezvous. */
  masterAddr: string;
  /** Port of rank 0's rendezvous. */
  masterPort: number;
  /** Which variables were used. */
  source: RankSource;
}

/** torchrun's default rendezvous port. */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, min: number): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new YuanError(
      'config',
      `environment variable ${name}=${JSON.stringify(raw ?? null)} is not an integer >= ${min}`,
    );
  }
  return n;
}

function port(env: Env, fallback: number): number {
  if (env.MASTER_PORT === undefined || env.MASTER_PORT === '') return fallback;
  const p = int(env, 'MASTER_PORT', 1);
  if (p > 65535) throw new YuanError('config', `environment variable MASTER_PORT=${p} is not a port (1..65535)`);
  return p;
}

function checkRank(rank: number, worldSize: number, rankVar: string, sizeVar: string): void {
  if (rank >= worldSize) throw new YuanError('config', `${rankVar}=${rank} is not below ${sizeVar}=${worldSize}`);
}

/**
 * Expands a SLURM host list such as `node[01-04,07],gpu-a[1-2]-ib` into host names (`node01 … node04, node07,
 * gpu-a1-ib, gpu-a2-ib`), keeping zero padding; several bracket groups in one name expand as a product, as
 * `scontrol show hostnames` does. A malformed list is an error naming it.
 */
export function expandNodelist(list: string): string[] {
  const out: string[] = [];
  for (const item of splitTop(list.trim())) {
    if (item === '') continue;
    out.push(...expandOne(item, list));
  }
  if (out.length === 0) throw new YuanError('config', `node list ${JSON.stringify(list)} names no host`);
  return out;
}

function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

function expandOne(item: string, whole: string): string[] {
  const open = item.indexOf('[');
  if (open < 0) {
    if (item.includes(']')) throw new YuanError('config', `node list ${JSON.stringify(whole)} has an unmatched "]"`);
    return [item];
  }
  const close = item.indexOf(']', open);
  if (close < 0) throw new YuanError('config', `node list ${JSON.stringify(whole)} has an unmatched "["`);
  const prefix = item.slice(0, open);
  const rest = expandOne(item.slice(close + 1), whole);
  const values: string[] = [];
  for (const range of item.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!m) throw new YuanError('config', `node list ${JSON.stringify(whole)} has a bad range "${range}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new YuanError('config', `node list ${JSON.stringify(whole)} has a descending range "${range}"`);
    if (hi - lo > 100_000)
      throw new YuanError('config', `node list ${JSON.stringify(whole)} has a range of over 100000 hosts`);
    const width = m[1]!.length;
    for (let v = lo; v <= hi; v++) values.push(String(v).padStart(width, '0'));
  }
  return values.flatMap((v) => rest.map((r) => prefix + v + r));
}

/**
 * The rank of this process from the environment, checked in this order:
 * 1. torchrun / `yuan launch`: `RANK`, `WORLD_SIZE`, `LOCAL_RANK` (default 0), `MASTER_ADDR` (default 127.0.0.1),
 *    `MASTER_PORT` (default 29500);
 * 2. SLURM (`srun`): `SLURM_PROCID`, `SLURM_NTASKS` (or `SLURM_NPROCS`), `SLURM_LOCALID`; the master is
 *    `MASTER_ADDR` if set, else the first host of `SLURM_STEP_NODELIST` / `SLURM_JOB_NODELIST`; the port is
 *    `MASTER_PORT` if set, else 20000 + SLURM_JOB_ID mod 20000 (so two jobs on one node differ);
 * 3. a Kubernetes indexed Job: `JOB_COMPLETION_INDEX` with `WORLD_SIZE` (required); the master is `MASTER_ADDR`, else
 *    `<job>-0[.<YUAN_HEADLESS_SERVICE>]` from the pod's `HOSTNAME` `<job>-<index>`; `LOCAL_RANK` 0;
 * 4. none of these: rank 0 of 1 (source `none`).
 * A variable that is set but malformed, or a rank not below the world size, is a one-line error naming it.
 */
export function rankFromEnvironment(env: Env = process.env): RankInfo {
  if (env.RANK !== undefined && env.RANK !== '') {
    if (env.WORLD_SIZE === undefined)
      throw new YuanError('config', 'RANK is set but WORLD_SIZE is not (torchrun-style launch needs both)');
    const rank = int(env, 'RANK', 0);
    const worldSize = int(env, 'WORLD_SIZE', 1);
    checkRank(rank, worldSize, 'RANK', 'WORLD_SIZE');
    const localRank = env.LOCAL_RANK === undefined || env.LOCAL_RANK === '' ? 0 : int(env, 'LOCAL_RANK', 0);
    return {
      rank,
      worldSize,
      localRank,
      masterAddr: env.MASTER_ADDR || '127.0.0.1',
      masterPort: port(env, DEFAULT_MASTER_PORT),
      source: 'torchrun',
    };
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_PROCID !== '') {
    const rank = int(env, 'SLURM_PROCID', 0);
    const sizeVar = env.SLURM_NTASKS !== undefined ? 'SLURM_NTASKS' : 'SLURM_NPROCS';
    if (env[sizeVar] === undefined)
      throw new YuanError('config', 'SLURM_PROCID is set but SLURM_NTASKS is not (run the ranks with srun -n N)');
    const worldSize = int(env, sizeVar, 1);
    checkRank(rank, worldSize, 'SLURM_PROCID', sizeVar);
    const localRank = env.SLURM_LOCALID === undefined ? 0 : int(env, 'SLURM_LOCALID', 0);
    let masterAddr = env.MASTER_ADDR;
    if (!masterAddr) {
      const list = env.SLURM_STEP_NODELIST || env.SLURM_JOB_NODELIST || env.SLURM_NODELIST;
      if (!list)
        throw new YuanError(
          'config',
          'SLURM rank without MASTER_ADDR, SLURM_STEP_NODELIST or SLURM_JOB_NODELIST: cannot tell where rank 0 runs',
        );
      masterAddr = expandNodelist(list)[0]!;
    }
    const jobId = Number(env.SLURM_JOB_ID ?? env.SLURM_JOBID);
    const fallback = Number.isInteger(jobId) && jobId >= 0 ? 20000 + (jobId % 20000) : DEFAULT_MASTER_PORT;
    return { rank, worldSize, localRank, masterAddr, masterPort: port(env, fallback), source: 'slurm' };
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== '') {
    const rank = int(env, 'JOB_COMPLETION_INDEX', 0);
    if (env.WORLD_SIZE === undefined)
      throw new YuanError(
        'config',
        "JOB_COMPLETION_INDEX is set but WORLD_SIZE is not (set it to the Job's completions)",
      );
    const worldSize = int(env, 'WORLD_SIZE', 1);
    checkRank(rank, worldSize, 'JOB_COMPLETION_INDEX', 'WORLD_SIZE');
    let masterAddr = env.MASTER_ADDR;
    if (!masterAddr) {
      const m = /^(.*)-\d+$/.exec(env.HOSTNAME ?? '');
      if (!m)
        throw new YuanError(
          'config',
          `Kubernetes rank without MASTER_ADDR, and HOSTNAME ${JSON.stringify(env.HOSTNAME ?? null)} is not <job>-<index>`,
        );
      masterAddr = `${m[1]}-0${env.YUAN_HEADLESS_SERVICE ? `.${env.YUAN_HEADLESS_SERVICE}` : ''}`;
    }
    return {
      rank,
      worldSize,
      localRank: 0,
      masterAddr,
      masterPort: port(env, DEFAULT_MASTER_PORT),
      source: 'kubernetes',
    };
  }
  return {
    rank: 0,
    worldSize: 1,
    localRank: 0,
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: port(env, DEFAULT_MASTER_PORT),
    source: 'none',
  };
}
