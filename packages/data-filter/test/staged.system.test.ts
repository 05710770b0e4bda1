import { hostname } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlan, printPlan, runFilter, runStage, selectTasks, STAGES } from '../src/index.js';
import {
  gaokaoPassages,
  gsm8k,
  haveDatasets,
  repoRoot,
  jsonl,
  mutate,
  mutateChars,
  rng,
  skipReason,
  wikiArticles,
  type Doc,
} from './corpus.js';

if (!haveDatasets) console.warn(`skipping staged dedup tests: ${skipReason}`);
const bin = path.join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');
if (!existsSync(bin))
  console.warn(`skipping the SIGKILL stage test: ${bin} is not built (cd packages/cli && npx tsup)`);

describe.skipIf(!haveDatasets)('staged dedup across shards (signatures → buckets → removals → apply)', () => {
  let dir: string;
  let shards: string[];
  let single: Buffer;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-staged-'));
    const rand = rng(11);
    const base: Doc[] = [...wikiArticles(24), ...gaokaoPassages(['chinese', 'history']).slice(0, 24), ...gsm8k(30)];
    // Planted across shards: exact copies (also with changed whitespace) and near copies (a few words changed).
    const planted: Doc[] = [];
    base
      .slice(0, 12)
      .forEach((d, i) => planted.push({ ...d, id: `${d.id}-copy`, text: i % 2 ? d.text : d.text.replace(/ /g, '  ') }));
    base.slice(12, 20).forEach((d) => planted.push({ ...d, id: `${d.id}-near`, text: mutate(d.text, 2, rand) }));
    base.slice(24, 34).forEach((d) => planted.push({ ...d, id: `${d.id}-near`, text: mutateChars(d.text, 2, rand) }));
    const all = [...base, ...planted];
    // Deal the documents into 4 shards so that copies mostly land in another shard than their original.
    shards = [0, 1, 2, 3].map((s) => path.join(dir, `in-${s}.jsonl`));
    shards.forEach((f, s) => writeFileSync(f, jsonl(all.filter((_, i) => i % 4 === s))));
    await runFilter({ inputs: shards, output: path.join(dir, 'single.jsonl') });
    single = readFileSync(path.join(dir, 'single.jsonl'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives exactly the output of one single-process run, with a crashed task rerun', async () => {
    const work = path.join(dir, 'work');
    const out = path.join(dir, 'out');
    const plan = await createPlan({ inputs: shards, work, output: out, tasks: 2, buckets: 3 });
    expect(plan.tasks).toEqual({ filter: 2, signatures: 2, buckets: 3, removals: 2, apply: 2 });
    await runStage(work, 'filter');
    await runStage(work, 'signatures', '0/2');
    // A buckets task cannot run before every signatures task has finished.
    await expect(runStage(work, 'buckets', '0/3')).rejects.toThrow(
      /^missing stage output .*signatures\/part-00001\.bin: run stage signatures \(task 1\/2\) first$/,
    );
    await runStage(work, 'signatures', '1/2');
    await runStage(work, 'buckets');
    // Task 1 of buckets "is killed": its marker is gone, its output is half written, a temporary file is left over.
    const bdir = path.join(work, 'buckets');
    rmSync(path.join(bdir, 'task-1-of-3.done'));
    truncateSync(path.join(bdir, 'bucket-00001.bin'), 5);
    writeFileSync(
      path.join(bdir, `.bucket-00001.bin.partial-${hostname().replace(/[^A-Za-z0-9_]/g, '_')}-99999-abcd1234`),
      'partial',
    );
    const rerun = await runStage(work, 'buckets');
    expect(rerun.ran).toEqual([1]);
    expect(rerun.skipped).toEqual([0, 2]);
    expect(readdirSync(bdir).filter((f) => f.includes('.tmp-') || f.includes('.partial-'))).toEqual([]);
    await runStage(work, 'removals');
    await runStage(work, 'apply');
    const staged = Buffer.concat(
      shards.map((_, j) => readFileSync(path.join(out, `part-${String(j).padStart(5, '0')}.jsonl`))),
    );
    const lines = (b: Buffer) => b.toString('utf8').trim().split('\n');
    // Planted copies were removed (the single run drops them), and the staged run keeps the very same documents.
    const ids = lines(single).map((l) => JSON.parse(l).id as string);
    // (the copy comes first when its shard does: then the original is the one dropped)
    const both = (suffix: string) =>
      ids.filter((id) => id.endsWith(suffix) && ids.includes(id.slice(0, -suffix.length)));
    expect(both('-copy')).toEqual([]);
    expect(both('-near').length).toBeLessThanOrEqual(1);
    expect(ids.filter((id) => id.endsWith('-copy') || id.endsWith('-near')).length).toBeGreaterThan(3);
    expect(ids.length).toBeGreaterThan(30);
    expect(staged.equals(single)).toBe(true);
  });

  it.skipIf(!existsSync(bin))(
    'a stage task killed with SIGKILL mid-write is rerun and the stage finishes with the same output',
    async () => {
      const work = path.join(dir, 'work-kill');
      const out = path.join(dir, 'out-kill');
      // Bigger shards, so that the task is still writing when it is killed.
      const big = shards.map((f, j) => {
        const g = path.join(dir, `big-${j}.jsonl`);
        writeFileSync(g, readFileSync(f, 'utf8').repeat(4));
        return g;
      });
      await createPlan({ inputs: big, work, output: out, tasks: 1 });
      const fdir = path.join(work, 'filter');
      const killed = await new Promise<string | null>((resolve) => {
        const child = spawn(process.execPath, [bin, 'filter', 'stage', 'filter', '--work', work, '--task', '0/1'], {
          stdio: 'ignore',
        });
        const poll = setInterval(() => {
          // killed while writing a later shard: the first is complete, the later one only a temporary file
          if (existsSync(fdir) && readdirSync(fdir).some((f) => /^\.part-0000[1-3]\.jsonl\.partial-/.test(f)))
            child.kill('SIGKILL');
        }, 5);
        child.on('exit', (_code, signal) => {
          clearInterval(poll);
          resolve(signal);
        });
      });
      expect(killed).toBe('SIGKILL');
      expect(existsSync(path.join(fdir, 'task-0-of-1.done'))).toBe(false);
      for (const s of STAGES) {
        const r = spawnSync(process.execPath, [bin, 'filter', 'stage', s, '--work', work], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
      }
      expect(readdirSync(fdir).filter((f) => f.includes('.tmp-') || f.includes('.partial-'))).toEqual([]);
      await runFilter({ inputs: big, output: path.join(dir, 'single-big.jsonl') });
      const staged = Buffer.concat(
        big.map((_, j) => readFileSync(path.join(out, `part-${String(j).padStart(5, '0')}.jsonl`))),
      );
      expect(staged.equals(readFileSync(path.join(dir, 'single-big.jsonl')))).toBe(true);
    },
  );

  it('one-line errors: mismatched task counts, a missing plan; the plan prints as SLURM and Kubernetes jobs', async () => {
    const work = path.join(dir, 'work2');
    const plan = await createPlan({ inputs: shards, work, output: path.join(dir, 'out2'), tasks: 4 });
    expect(() => selectTasks(plan, 'buckets', '1/3')).toThrow(
      /^--task: 3 tasks given but the plan has 4 tasks for stage buckets$/,
    );
    expect(() =>
      selectTasks(plan, 'apply', undefined, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '8' }),
    ).toThrow(/^SLURM_ARRAY_TASK_ID: 8 tasks given but the plan has 4/);
    expect(selectTasks(plan, 'apply', undefined, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' })).toEqual([
      { index: 2, count: 4 },
    ]);
    expect(selectTasks(plan, 'apply', undefined, { JOB_COMPLETION_INDEX: '3' })).toEqual([{ index: 3, count: 4 }]);
    expect(() => selectTasks(plan, 'apply', undefined, { JOB_COMPLETION_INDEX: '4' })).toThrow(
      /^JOB_COMPLETION_INDEX: task 4 is out of range/,
    );
    await expect(runStage(path.join(dir, 'nowhere'), 'filter')).rejects.toThrow(/plan\.json not found/);
    const slurm = printPlan(plan, 'slurm');
    for (const s of STAGES) expect(slurm).toContain(`--job-name=yuan-filter-${s} --array=0-3`);
    expect(slurm).toContain('--dependency=afterok:$prev');
    const k8s = printPlan(plan, 'k8s');
    expect(k8s.split('\n---\n')).toHaveLength(5);
    expect(k8s).toContain('completionMode: Indexed');
    expect(existsSync(path.join(work, 'plan.json'))).toBe(true);
  });
});
