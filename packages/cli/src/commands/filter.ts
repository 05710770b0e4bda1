import { availableParallelism } from 'node:os';
import { YuanError } from '@yuan/core';
import {
  createPlan,
  printPlan,
  runFilter,
  runStage,
  STAGE_DOC,
  STAGES,
  workersForInput,
  type FilterProgress,
  type FilterReport,
  type StageName,
} from '@yuan/data-filter';
import { numberOption, requireString, type Command, type CommandIO } from '../command.js';
import path from 'node:path';

function bar(p: FilterProgress): string {
  const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : 0;
  const width = 24;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${line(p)}`;
}

function line(p: FilterProgress): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return `${n(p.documents)} docs, ${n(p.documentsPerSecond)} docs/s, ${p.megabytesPerSecond.toFixed(1)} MB/s, kept ${n(p.kept)} (${(100 * p.keptFraction).toFixed(1)}%), dropped ${n(p.dropped)}, malformed ${n(p.malformed)}, ${p.seconds.toFixed(1)} s`;
}

function progressPrinter(io: CommandIO): (p: FilterProgress) => void {
  let drawn = false;
  return (p) => {
    if (io.isTTY) {
      io.err(`${drawn ? '\x1b[1A\x1b[2K' : ''}${bar(p)}`);
      drawn = true;
    } else if (!p.done) {
      io.err(`filter: ${line(p)}, ${p.bytesTotal ? ((100 * p.bytesRead) / p.bytesTotal).toFixed(0) : 0}% read`);
    }
  };
}

function summary(r: FilterReport): string[] {
  const threads = r.threads === 1 ? 'on the main thread' : `on ${r.threads} worker threads`;
  const rows = [
    `${r.input.documents} documents in (${r.input.malformed} malformed lines, ${r.input.blank} blank), ${r.result.kept} kept, ${r.result.dropped} dropped; ${r.megabytesPerSecond} MB/s, ${r.documentsPerSecond} docs/s, ${threads}`,
  ];
  const width = Math.max(...r.filters.map((f) => f.label.length), 5);
  rows.push(`${'filter'.padEnd(width)} ${'seen'.padStart(9)} ${'dropped'.padStart(9)}  reasons`);
  if (r.input.malformed) {
    rows.push(
      `${'input'.padEnd(width)} ${String(r.input.lines).padStart(9)} ${String(r.input.malformed).padStart(9)}  ${Object.entries(
        r.input.reasons,
      )
        .map(([k, v]) => `${k} ${v.count}`)
        .join(', ')}`,
    );
  }
  for (const f of r.filters) {
    const reasons = Object.entries(f.reasons)
      .sort((a, b) => b[1].count - a[1].count)
      .map(([k, v]) => `${k} ${v.count}`)
      .join(', ');
    rows.push(`${f.label.padEnd(width)} ${String(f.seen).padStart(9)} ${String(f.dropped).padStart(9)}  ${reasons}`);
  }
  return rows;
}

/**
 * `--workers N`; without it, the machine's cores (`os.availableParallelism()`), but one thread per 16 MB of `inputs`
 * at most (`workersForInput`: a worker thread's start-up costs about a second of CPU).
 */
export function workersOption(values: Record<string, unknown>, inputs: readonly string[]): number {
  const raw = values.workers as string | undefined;
  if (raw === undefined) return workersForInput(inputs, availableParallelism(), values.shard as string | undefined);
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1) throw new YuanError('usage', `--workers "${raw}" must be a whole number >= 1`);
  return n;
}

/** `yuan filter`: streams JSONL documents through a filter pipeline into a clean training set. */
export const filterCommand: Command = {
  path: ['filter'],
  summary: 'filter and deduplicate JSONL pretraining data (Chinese, English, code) with a report of what was dropped',
  usage:
    'yuan filter --input FILE [--input FILE ...] --output OUT.jsonl[.gz] [--rejects REJ.jsonl] [--report R.json] [--config filters.yaml] [--preset yuan-zh-en] [--set k=v ...] [--badwords LANG=FILE ...] [--shard I/N] [--workers N] [--json]\n' +
    '       yuan filter plan|stage ... (corpus-scale dedup across shards and machines: see `yuan filter plan --help`)',
  options: {
    input: { type: 'string', multiple: true },
    output: { type: 'string' },
    rejects: { type: 'string' },
    report: { type: 'string' },
    config: { type: 'string' },
    preset: { type: 'string' },
    set: { type: 'string', multiple: true },
    badwords: { type: 'string', multiple: true },
    shard: { type: 'string' },
    workers: { type: 'string' },
    json: { type: 'boolean' },
    plugin: { type: 'string', multiple: true },
  },
  async run(values, positionals, io) {
    const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
    if (inputs.length === 0) throw new YuanError('usage', `missing --input\nusage: ${filterCommand.usage}`);
    const report = await runFilter({
      inputs,
      output: requireString(values, 'output', filterCommand),
      rejects: values.rejects as string | undefined,
      report: values.report as string | undefined,
      config: values.config as string | undefined,
      preset: values.preset as string | undefined,
      set: values.set as string[] | undefined,
      badwords: values.badwords as string[] | undefined,
      shard: values.shard as string | undefined,
      workers: workersOption(values, inputs),
      pluginModules: ((values.plugin as string[] | undefined) ?? []).map((p) =>
        p.startsWith('.') || path.isAbsolute(p) ? path.resolve(p) : p,
      ),
      onProgress: progressPrinter(io),
    });
    if (values.json) io.out(JSON.stringify(report, null, 2));
    else for (const row of summary(report)) io.out(row);
  },
};

/** `yuan filter plan`: writes WORK/plan.json for a corpus-scale run and prints the SLURM or Kubernetes jobs for its stages. */
export const filterPlanCommand: Command = {
  path: ['filter', 'plan'],
  summary: 'plan a corpus-scale filter + cross-shard dedup run (stages as SLURM array jobs or Kubernetes indexed Jobs)',
  usage:
    'yuan filter plan --input SHARD [--input SHARD ...] --work SHARED_DIR --output DIR [--tasks N] [--buckets M] [--workers N] [--rejects] ' +
    '[--config F] [--preset P] [--set k=v ...] [--badwords LANG=FILE ...] [--print slurm|k8s] [--yuan CMD] [--image IMG] [--claim PVC]\n' +
    `stages, each a set of independent tasks (run them with \`yuan filter stage NAME --work SHARED_DIR [--task I/N]\`):\n${STAGES.map((s) => `  ${s.padEnd(10)} ${STAGE_DOC[s]}`).join('\n')}`,
  options: {
    input: { type: 'string', multiple: true },
    work: { type: 'string' },
    output: { type: 'string' },
    tasks: { type: 'string' },
    buckets: { type: 'string' },
    workers: { type: 'string' },
    rejects: { type: 'boolean' },
    config: { type: 'string' },
    preset: { type: 'string' },
    set: { type: 'string', multiple: true },
    badwords: { type: 'string', multiple: true },
    print: { type: 'string' },
    yuan: { type: 'string' },
    image: { type: 'string' },
    claim: { type: 'string' },
  },
  async run(values, positionals, io) {
    const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
    if (inputs.length === 0)
      throw new YuanError('usage', `missing --input\nusage: ${filterPlanCommand.usage.split('\n')[0]}`);
    const print = values.print as string | undefined;
    if (print !== undefined && print !== 'slurm' && print !== 'k8s')
      throw new YuanError('usage', `--print "${print}" must be slurm or k8s`);
    const int = (name: string) =>
      values[name] === undefined ? undefined : numberOption(values, name, 1, { int: true, min: 1 });
    const plan = await createPlan({
      inputs,
      work: requireString(values, 'work', filterPlanCommand),
      output: requireString(values, 'output', filterPlanCommand),
      tasks: int('tasks'),
      buckets: int('buckets'),
      workers: int('workers'),
      rejects: values.rejects as boolean | undefined,
      config: values.config as string | undefined,
      preset: values.preset as string | undefined,
      set: values.set as string[] | undefined,
      badwords: values.badwords as string[] | undefined,
    });
    if (print)
      io.out(
        printPlan(plan, print, {
          yuan: values.yuan as string | undefined,
          image: values.image as string | undefined,
          claim: values.claim as string | undefined,
        }).trimEnd(),
      );
    else {
      io.out(
        `wrote ${plan.work}/plan.json: ${plan.inputs.length} shards; tasks per stage ${STAGES.map((s) => `${s} ${plan.tasks[s]}`).join(', ')}`,
      );
      io.out(
        `run each stage in order: ${STAGES.map((s) => `yuan filter stage ${s} --work ${plan.work}`).join(' && ')}`,
      );
    }
  },
};

/** `yuan filter stage NAME`: runs task(s) of one stage of a plan (from --task, SLURM or Kubernetes variables, or all). */
export const filterStageCommand: Command = {
  path: ['filter', 'stage'],
  summary:
    'run task(s) of one stage of a `yuan filter plan` (resumable; --task I/N, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)',
  usage: `yuan filter stage ${STAGES.join('|')} --work SHARED_DIR [--task I/N|all] [--json]`,
  options: { work: { type: 'string' }, task: { type: 'string' }, json: { type: 'boolean' } },
  async run(values, positionals, io) {
    const stage = positionals[0];
    if (!stage || !(STAGES as readonly string[]).includes(stage))
      throw new YuanError(
        'usage',
        `stage "${stage ?? ''}" must be one of ${STAGES.join(', ')}\nusage: ${filterStageCommand.usage}`,
      );
    if (positionals.length > 1)
      throw new YuanError('usage', `unexpected argument "${positionals[1]}"\nusage: ${filterStageCommand.usage}`);
    const result = await runStage(
      requireString(values, 'work', filterStageCommand),
      stage as StageName,
      values.task as string | undefined,
    );
    if (values.json) io.out(JSON.stringify(result, null, 2));
    else for (const m of result.messages) io.out(m);
  },
};
