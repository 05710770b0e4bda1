import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { YuanError, type JsonObject } from '@yuan/core';
import { resolveConfig, type ConfigLayers } from '../run.js';
import type { FilterConfig } from '../config.js';
import type { FilterStep } from '../presets.js';
import { writeFileAtomic } from './files.js';

/** The stages of a corpus-scale filter run, in order. Each stage's tasks are independent of one another. */
export const STAGES = ['filter', 'signatures', 'buckets', 'removals', 'apply'] as const;
/** One stage of a plan. */
export type StageName = (typeof STAGES)[number];

/** What each stage does, for `--help` and the printed scripts. */
export const STAGE_DOC: Record<StageName, string> = {
  filter: 'per-document filters (everything but dedup) on each input shard → filtered/part-J.jsonl',
  signatures: 'exact (MD5) and MinHash band keys of every filtered document → signatures/part-J.bin',
  buckets:
    'task b owns the keys ≡ b (mod tasks); the first document of each key is kept, the others are listed → buckets/bucket-B.bin',
  removals: 'the duplicates of each shard gathered from every bucket → removals/part-J.bin',
  apply: 'each filtered shard without its removed documents → OUTPUT/part-J.jsonl (+ rejects)',
};

/** `plan.json` in the work folder: everything a stage task needs, so that tasks take no other arguments. */
export interface FilterPlan {
  format: 'yuan-filter-plan-1';
  /** Input shards (absolute paths), in corpus order. */
  inputs: string[];
  /** Absolute work folder (shared by all machines). */
  work: string;
  /** Absolute output folder of the apply stage. */
  output: string;
  /** Tasks of each stage. Per-shard stages give shard J to task J mod tasks. */
  tasks: Record<StageName, number>;
  /** Write rejects next to the outputs. */
  rejects: boolean;
  /** Worker threads per task of the filter stage. */
  workers: number;
  /** The resolved filter config; `head` are its per-document steps, `dedup` its exact-dedup and minhash steps. */
  config: FilterConfig;
  head: FilterStep[];
  dedup: FilterStep[];
}

/** Options of `createPlan`. */
export interface CreatePlanOptions extends ConfigLayers {
  inputs: string[];
  work: string;
  output: string;
  /** Tasks per stage (default: one per input shard, at most 64; buckets: the same). */
  tasks?: number;
  /** Tasks of the buckets stage (default `tasks`). */
  buckets?: number;
  rejects?: boolean;
  workers?: number;
}

const DEDUP = new Set(['exact-dedup', 'minhash']);

/** Splits a pipeline into its per-document head and its dedup steps (exact-dedup, then minhash, at the end). */
export function splitDedup(filters: FilterStep[]): { head: FilterStep[]; dedup: FilterStep[] } {
  const first = filters.findIndex((s) => DEDUP.has(s.name));
  const head = first < 0 ? filters : filters.slice(0, first);
  const dedup = first < 0 ? [] : filters.slice(first);
  if (dedup.some((s) => !DEDUP.has(s.name))) {
    throw new YuanError(
      'config',
      `staged dedup needs exact-dedup and minhash at the end of the pipeline; found ${dedup.map((s) => s.label ?? s.name).join(', ')}`,
    );
  }
  const names = dedup.map((s) => s.name).join(',');
  if (!['', 'exact-dedup', 'minhash', 'exact-dedup,minhash'].includes(names)) {
    throw new YuanError(
      'config',
      `staged dedup supports exact-dedup, minhash or exact-dedup then minhash; the pipeline has ${names}`,
    );
  }
  return { head, dedup };
}

/** Resolves the config, checks the inputs, and writes `WORK/plan.json` (atomically). Returns the plan. */
export async function createPlan(o: CreatePlanOptions): Promise<FilterPlan> {
  if (o.inputs.length === 0) throw new YuanError('usage', 'no input files given');
  for (const f of o.inputs) {
    if (!existsSync(f)) throw new YuanError('not-found', `input file not found: ${f}`);
    if (!statSync(f).isFile()) throw new YuanError('usage', `input is not a file: ${f}`);
  }
  const config = await resolveConfig(o);
  const { head, dedup } = splitDedup(config.filters);
  const n = o.tasks ?? Math.min(64, o.inputs.length);
  const m = o.buckets ?? n;
  for (const [k, v] of [
    ['--tasks', n],
    ['--buckets', m],
    ['--workers', o.workers ?? 1],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new YuanError('usage', `${k} ${v} must be a whole number >= 1`);
  }
  const plan: FilterPlan = {
    format: 'yuan-filter-plan-1',
    inputs: o.inputs.map((f) => path.resolve(f)),
    work: path.resolve(o.work),
    output: path.resolve(o.output),
    tasks: { filter: n, signatures: n, buckets: m, removals: n, apply: n },
    rejects: o.rejects ?? false,
    workers: o.workers ?? 1,
    config,
    head,
    dedup,
  };
  writeFileAtomic(path.join(plan.work, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  return plan;
}

/** Reads `WORK/plan.json`; a missing or foreign file is a one-line error. */
export function readPlan(work: string): FilterPlan {
  const file = path.join(work, 'plan.json');
  if (!existsSync(file))
    throw new YuanError(
      'not-found',
      `${file} not found: create it with \`yuan filter plan --input ... --work ${work} --output DIR\``,
    );
  let plan: FilterPlan;
  try {
    plan = JSON.parse(readFileSync(file, 'utf8')) as FilterPlan;
  } catch (e) {
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (plan?.format !== 'yuan-filter-plan-1')
    throw new YuanError('input', `${file}: format ${JSON.stringify(plan?.format)}; expected "yuan-filter-plan-1"`);
  return plan;
}

/** A task of a stage: its index and the stage's task count. */
export interface StageTask {
  index: number;
  count: number;
}

/**
 * Which task(s) of `stage` to run: `--task I/N`, else `SLURM_ARRAY_TASK_ID` (+ `SLURM_ARRAY_TASK_COUNT`), else a
 * Kubernetes indexed Job's `JOB_COMPLETION_INDEX`, else all tasks of the stage in turn. A count that differs from the
 * plan's is an error (a job launched with the wrong array size would silently skip or repeat shards).
 */
export function selectTasks(
  plan: FilterPlan,
  stage: StageName,
  task: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): StageTask[] {
  const count = plan.tasks[stage];
  let index: number | undefined;
  let given: number | undefined;
  let source = '';
  if (task !== undefined && task !== 'all') {
    const m = /^(\d+)\/(\d+)$/.exec(task.trim());
    if (!m) throw new YuanError('usage', `--task "${task}" must be I/N with 0 <= I < N, e.g. 0/4 (or "all")`);
    index = Number(m[1]);
    given = Number(m[2]);
    source = '--task';
  } else if (task === undefined && env.SLURM_ARRAY_TASK_ID !== undefined) {
    index = Number(env.SLURM_ARRAY_TASK_ID);
    given = env.SLURM_ARRAY_TASK_COUNT !== undefined ? Number(env.SLURM_ARRAY_TASK_COUNT) : undefined;
    source = 'SLURM_ARRAY_TASK_ID';
  } else if (task === undefined && env.JOB_COMPLETION_INDEX !== undefined) {
    index = Number(env.JOB_COMPLETION_INDEX);
    source = 'JOB_COMPLETION_INDEX';
  }
  if (index === undefined) return Array.from({ length: count }, (_, i) => ({ index: i, count }));
  if (given !== undefined && given !== count) {
    throw new YuanError('usage', `${source}: ${given} tasks given but the plan has ${count} tasks for stage ${stage}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new YuanError('usage', `${source}: task ${index} is out of range: stage ${stage} has tasks 0..${count - 1}`);
  }
  return [{ index, count }];
}

/** Options of `printPlan`. */
export interface PrintOptions {
  /** The command that runs `yuan` on the cluster. Default `yuan`. */
  yuan?: string;
  /** Kubernetes: container image and the PersistentVolumeClaim mounted at the work folder. */
  image?: string;
  claim?: string;
}

/** The SLURM batch script (one array job per stage, each after the previous) or the Kubernetes indexed Jobs. */
export function printPlan(plan: FilterPlan, kind: 'slurm' | 'k8s', o: PrintOptions = {}): string {
  const yuan = o.yuan ?? 'yuan';
  if (kind === 'slurm') {
    const lines = [
      '#!/bin/bash',
      `# yuan filter: ${plan.inputs.length} shards, work folder ${plan.work}, output ${plan.output}.`,
      '# Submit with `bash THIS_FILE`: one array job per stage, each starting after the previous one succeeded.',
      '# A task that fails or is killed can be resubmitted; finished tasks are skipped.',
      'set -euo pipefail',
      'prev=""',
    ];
    for (const s of STAGES) {
      lines.push(`# ${s}: ${STAGE_DOC[s]}`);
      lines.push(
        `prev=$(sbatch --parsable --job-name=yuan-filter-${s} --array=0-${plan.tasks[s] - 1} --cpus-per-task=${s === 'filter' ? plan.workers : 1} \${prev:+--dependency=afterok:$prev} ` +
          `--wrap "${yuan} filter stage ${s} --work ${plan.work}")`,
      );
      lines.push(`echo "${s}: job $prev"`);
    }
    return `${lines.join('\n')}\n`;
  }
  const image = o.image ?? 'yuan:latest';
  const claim = o.claim ?? 'yuan-data';
  const docs = STAGES.map((s) =>
    [
      `# ${s}: ${STAGE_DOC[s]}`,
      `# Apply after the previous stage completed: kubectl wait --for=condition=complete job/yuan-filter-${STAGES[Math.max(0, STAGES.indexOf(s) - 1)]}`,
      'apiVersion: batch/v1',
      'kind: Job',
      'metadata:',
      `  name: yuan-filter-${s}`,
      'spec:',
      '  completionMode: Indexed',
      `  completions: ${plan.tasks[s]}`,
      `  parallelism: ${plan.tasks[s]}`,
      '  backoffLimitPerIndex: 3',
      `  maxFailedIndexes: 0`,
      '  template:',
      '    spec:',
      '      restartPolicy: Never',
      '      containers:',
      '        - name: task',
      `          image: ${image}`,
      `          command: [${[...yuan.split(' '), 'filter', 'stage', s, '--work', plan.work].map((a) => JSON.stringify(a)).join(', ')}]`,
      `          resources: { requests: { cpu: "${s === 'filter' ? plan.workers : 1}" } }`,
      '          volumeMounts:',
      `            - { name: data, mountPath: ${JSON.stringify(plan.work)} }`,
      '      volumes:',
      `        - { name: data, persistentVolumeClaim: { claimName: ${claim} } }`,
    ].join('\n'),
  );
  return `${docs.join('\n---\n')}\n`;
}

export type { JsonObject };
