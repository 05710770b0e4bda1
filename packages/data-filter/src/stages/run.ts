import { createReadStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { YuanError } from '@yuan/core';
import { getField } from '../io/records.js';
import { AtomicWriter } from '../io/writer.js';
import { FilterPipeline, isKeyed, type KeyedFilter } from '../pipeline.js';
import { buildFilterRegistry } from '../plugins.js';
import { rejectLine } from '../parallel/work.js';
import { KeySet } from '../hash/keyset.js';
import { runFilter } from '../run.js';
import { readPlan, selectTasks, type FilterPlan, type StageName, type StageTask } from './plan.js';
import { removeStaleTemps, words, writeFileAtomic } from './files.js';

/** What one stage run did: tasks run now, tasks found finished before (skipped), and a line per task. */
export interface StageResult {
  stage: StageName;
  ran: number[];
  skipped: number[];
  messages: string[];
}

const part = (j: number) => `part-${String(j).padStart(5, '0')}`;
const FLAG_EXACT = 1;
const FLAG_NEAR = 2;

function stageDir(plan: FilterPlan, stage: StageName): string {
  return path.join(plan.work, stage);
}

function marker(plan: FilterPlan, stage: StageName, t: StageTask): string {
  return path.join(stageDir(plan, stage), `task-${t.index}-of-${t.count}.done`);
}

/** Shards of a per-shard stage task: J ≡ index (mod count). */
function shardsOf(plan: FilterPlan, t: StageTask): number[] {
  return plan.inputs.map((_, j) => j).filter((j) => j % t.count === t.index);
}

/** A file a task needs from an earlier stage; missing means that stage's task has not finished. */
function need(file: string, stage: StageName, plan: FilterPlan, shard?: number): string {
  if (!existsSync(file)) {
    const task = shard === undefined ? '' : ` (task ${shard % plan.tasks[stage]}/${plan.tasks[stage]})`;
    throw new YuanError('input', `missing stage output ${file}: run stage ${stage}${task} first`);
  }
  return file;
}

async function dedupFilters(plan: FilterPlan): Promise<{ exact?: KeyedFilter; near?: KeyedFilter }> {
  if (plan.dedup.length === 0) return {};
  const registry = await buildFilterRegistry([], plan.config.plugins);
  const p = new FilterPipeline(registry, plan.dedup, 0);
  const out: { exact?: KeyedFilter; near?: KeyedFilter } = {};
  plan.dedup.forEach((s, i) => {
    const f = p.filter(i);
    if (!isKeyed(f)) throw new YuanError('config', `filter ${s.name} cannot run as a dedup stage`);
    if (s.name === 'exact-dedup') out.exact = f;
    else out.near = f;
  });
  return out;
}

async function* documents(file: string, textField: string): AsyncGenerator<string> {
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line === '') continue;
    yield getField(JSON.parse(line) as Record<string, unknown>, textField) as string;
  }
}

async function taskFilter(plan: FilterPlan, t: StageTask): Promise<string> {
  const dir = stageDir(plan, 'filter');
  let docs = 0;
  let kept = 0;
  for (const j of shardsOf(plan, t)) {
    const out = path.join(dir, `${part(j)}.jsonl`);
    const { textField, idField, maxLineBytes, annotate, examples, plugins } = plan.config;
    const r = await runFilter({
      inputs: [plan.inputs[j]],
      output: out,
      rejects: plan.rejects ? path.join(dir, `${part(j)}.rejects.jsonl`) : undefined,
      report: path.join(dir, `${part(j)}.report.json`),
      configObject: { textField, idField, maxLineBytes, annotate, examples, plugins, filters: plan.head as never },
      workers: plan.workers,
    });
    docs += r.input.documents;
    kept += r.result.kept;
  }
  return `${docs} documents, ${kept} kept by the per-document filters`;
}

async function taskSignatures(plan: FilterPlan, t: StageTask): Promise<string> {
  const { exact, near } = await dedupFilters(plan);
  const width = (exact?.keyWidth ?? 0) + (near?.keyWidth ?? 0);
  let docs = 0;
  for (const j of shardsOf(plan, t)) {
    const input = need(path.join(stageDir(plan, 'filter'), `${part(j)}.jsonl`), 'filter', plan, j);
    const chunks: Uint32Array[] = [];
    for await (const text of documents(input, plan.config.textField)) {
      const doc = { id: '', text, record: {} };
      const row = new Uint32Array(width);
      if (exact) row.set(exact.keys(doc), 0);
      if (near) row.set(near.keys(doc), exact?.keyWidth ?? 0);
      chunks.push(row);
      docs++;
    }
    const all = new Uint32Array(chunks.length * width);
    chunks.forEach((c, i) => all.set(c, i * width));
    writeFileAtomic(path.join(stageDir(plan, 'signatures'), `${part(j)}.bin`), new Uint8Array(all.buffer));
  }
  return `${docs} signatures (${width * 4} bytes each)`;
}

async function taskBuckets(plan: FilterPlan, t: StageTask): Promise<string> {
  const { exact, near } = await dedupFilters(plan);
  const ew = exact?.keyWidth ?? 0;
  const width = ew + (near?.keyWidth ?? 0);
  const exactSeen = new KeySet(4, 1 << 12);
  const nearSeen = new KeySet(2, 1 << 12);
  const out: number[] = [];
  for (let j = 0; j < plan.inputs.length; j++) {
    const file = need(path.join(stageDir(plan, 'signatures'), `${part(j)}.bin`), 'signatures', plan, j);
    const sig = words(readFileSync(file));
    if (width === 0) continue;
    if (sig.length % width !== 0)
      throw new YuanError(
        'input',
        `${file}: ${sig.length * 4} bytes is not a whole number of ${width * 4}-byte signatures (truncated?)`,
      );
    const n = sig.length / width;
    for (let k = 0; k < n; k++) {
      const base = k * width;
      let flags = 0;
      // Keys are hashes: a key belongs to the task of its first word modulo the task count.
      if (exact && sig[base] % t.count === t.index && !exactSeen.add(sig, base)) flags |= FLAG_EXACT;
      if (near) {
        for (let b = ew; b < width; b += 2)
          if (sig[base + b] % t.count === t.index && !nearSeen.add(sig, base + b)) flags |= FLAG_NEAR;
      }
      if (flags) out.push(j, k, flags);
    }
  }
  writeFileAtomic(
    path.join(stageDir(plan, 'buckets'), `bucket-${String(t.index).padStart(5, '0')}.bin`),
    new Uint8Array(Uint32Array.from(out).buffer),
  );
  return `${out.length / 3} duplicate entries (exact keys ${exactSeen.size}, band keys ${nearSeen.size})`;
}

async function taskRemovals(plan: FilterPlan, t: StageTask): Promise<string> {
  const mine = new Map<number, Map<number, number>>(shardsOf(plan, t).map((j) => [j, new Map()]));
  const buckets = plan.tasks.buckets;
  for (let b = 0; b < buckets; b++) {
    const file = path.join(stageDir(plan, 'buckets'), `bucket-${String(b).padStart(5, '0')}.bin`);
    if (!existsSync(file))
      throw new YuanError('input', `missing stage output ${file}: run stage buckets (task ${b}/${buckets}) first`);
    const w = words(readFileSync(file));
    if (w.length % 3 !== 0)
      throw new YuanError('input', `${file}: truncated (${w.length * 4} bytes is not a whole number of entries)`);
    for (let i = 0; i < w.length; i += 3) {
      const m = mine.get(w[i]);
      if (m) m.set(w[i + 1], (m.get(w[i + 1]) ?? 0) | w[i + 2]);
    }
  }
  let total = 0;
  for (const [j, m] of mine) {
    const ks = [...m.keys()].sort((a, b) => a - b);
    const flat = new Uint32Array(ks.length * 2);
    ks.forEach((k, i) => {
      flat[2 * i] = k;
      flat[2 * i + 1] = m.get(k)!;
    });
    total += ks.length;
    writeFileAtomic(path.join(stageDir(plan, 'removals'), `${part(j)}.bin`), new Uint8Array(flat.buffer));
  }
  return `${total} documents to remove`;
}

async function taskApply(plan: FilterPlan, t: StageTask): Promise<string> {
  let kept = 0;
  let removed = 0;
  const exactLabel = plan.dedup.find((s) => s.name === 'exact-dedup');
  const nearLabel = plan.dedup.find((s) => s.name === 'minhash');
  for (const j of shardsOf(plan, t)) {
    const input = need(path.join(stageDir(plan, 'filter'), `${part(j)}.jsonl`), 'filter', plan, j);
    const rem = words(readFileSync(need(path.join(stageDir(plan, 'removals'), `${part(j)}.bin`), 'removals', plan, j)));
    const flags = new Map<number, number>();
    for (let i = 0; i < rem.length; i += 2) flags.set(rem[i], rem[i + 1]);
    const out = new AtomicWriter(path.join(plan.output, `${part(j)}.jsonl`));
    const rejects = plan.rejects ? new AtomicWriter(path.join(plan.output, `${part(j)}.rejects.jsonl`)) : undefined;
    try {
      let k = 0;
      for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
        if (line === '') continue;
        const f = flags.get(k++) ?? 0;
        if (f === 0) {
          out.write(`${line}\n`);
          kept++;
        } else {
          removed++;
          if (rejects) {
            const step = f & FLAG_EXACT ? exactLabel! : nearLabel!;
            const reason = `${step.label ?? step.name}:${f & FLAG_EXACT ? 'duplicate' : 'near-duplicate'}`;
            const rec = JSON.parse(line) as Record<string, unknown>;
            const id = getField(rec, plan.config.idField);
            rejects.write(
              rejectLine(
                reason,
                undefined,
                input,
                k,
                typeof id === 'string' || typeof id === 'number' ? String(id) : `${part(j)}:${k}`,
                line,
              ),
            );
          }
        }
        await out.drain();
        await rejects?.drain();
      }
      await out.commit();
      await rejects?.commit();
    } catch (e) {
      await out.abort();
      await rejects?.abort();
      throw e;
    }
  }
  return `${kept} kept, ${removed} removed as duplicates`;
}

const TASKS: Record<StageName, (plan: FilterPlan, t: StageTask) => Promise<string>> = {
  filter: taskFilter,
  signatures: taskSignatures,
  buckets: taskBuckets,
  removals: taskRemovals,
  apply: taskApply,
};

/**
 * Runs task(s) of one stage of the plan in `work` (see `selectTasks` for how the task is chosen). A task whose
 * completion marker exists is skipped, so a stage can be rerun after a crash; outputs are written atomically, and a
 * task that needs an earlier stage's missing output fails with a one-line error naming it.
 */
export async function runStage(
  work: string,
  stage: StageName,
  task?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<StageResult> {
  const plan = readPlan(work);
  const result: StageResult = { stage, ran: [], skipped: [], messages: [] };
  for (const t of selectTasks(plan, stage, task, env)) {
    const done = marker(plan, stage, t);
    if (existsSync(done)) {
      result.skipped.push(t.index);
      result.messages.push(`${stage} task ${t.index}/${t.count}: already done`);
      continue;
    }
    // Temporary files a killed run of this very task left behind (other tasks may be writing theirs right now).
    const names = stage === 'buckets' ? [`bucket-${String(t.index).padStart(5, '0')}`] : shardsOf(plan, t).map(part);
    const mine = (name: string) => names.some((n) => name.startsWith(`${n}.`));
    removeStaleTemps(stageDir(plan, stage), mine);
    if (stage === 'apply') removeStaleTemps(plan.output, mine);
    const started = performance.now();
    const what = await TASKS[stage](plan, t);
    writeFileAtomic(
      done,
      `${JSON.stringify({ stage, task: t.index, of: t.count, seconds: (performance.now() - started) / 1000, summary: what })}\n`,
    );
    result.ran.push(t.index);
    result.messages.push(`${stage} task ${t.index}/${t.count}: ${what}`);
  }
  return result;
}

/** Stage status of a plan: finished tasks per stage. */
export function planStatus(work: string): Record<StageName, { done: number; tasks: number }> {
  const plan = readPlan(work);
  const out = {} as Record<StageName, { done: number; tasks: number }>;
  for (const s of Object.keys(plan.tasks) as StageName[]) {
    const dir = stageDir(plan, s);
    const done = existsSync(dir)
      ? readdirSync(dir).filter((f) => new RegExp(`^task-\\d+-of-${plan.tasks[s]}\\.done$`).test(f)).length
      : 0;
    out[s] = { done, tasks: plan.tasks[s] };
  }
  return out;
}
