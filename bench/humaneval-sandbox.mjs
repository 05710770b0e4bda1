// HumanEval sandbox throughput: the 164 canonical solutions executed in the sandbox with W workers, as samples per
// second and as a ratio against W = 1 measured in the same run; also the namespace layer's cost against `plain`.
// Usage: node bench/humaneval-sandbox.mjs [--workers 1,2,4] [--limit 164] [--data-dir ../shared/datasets]
// Needs packages/eval built (cd packages/eval && npx tsup).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultDataDir, humanEvalProgram, loadHumanEval, Sandbox } from '../packages/eval/dist/index.js';

const { values } = parseArgs({ options: { workers: { type: 'string', default: '1,2,4' }, limit: { type: 'string', default: '164' }, 'data-dir': { type: 'string' } } });
const dataDir = path.resolve(values['data-dir'] ?? defaultDataDir());
const problems = loadHumanEval(dataDir).slice(0, Number(values.limit));
const programs = problems.map((p) => humanEvalProgram(p, p.canonicalSolution));

async function measure(sandbox, workers) {
  let next = 0;
  let passed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < programs.length) {
        const r = await sandbox.run(programs[next++]);
        if (r.status === 'ok') passed++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (passed !== programs.length) throw new Error(`${programs.length - passed} canonical solutions failed in the sandbox`);
  return programs.length / seconds;
}

const auto = await Sandbox.create();
const plain = await Sandbox.create({ isolation: 'plain' });
const workerCounts = values.workers.split(',').map(Number);
console.log(`HumanEval canonical solutions: ${programs.length} programs, isolation ${auto.isolation}, ${(await import('node:os')).cpus().length} CPUs`);
await measure(auto, 1); // warm-up (page cache, python startup)
const base = await measure(auto, 1);
for (const w of workerCounts) {
  const rate = w === 1 ? base : await measure(auto, w);
  console.log(`workers ${String(w).padStart(2)}  ${rate.toFixed(1).padStart(6)} samples/s  x${(rate / base).toFixed(2)} vs 1 worker`);
}
if (auto.isolation === 'namespaces') {
  const plainRate = await measure(plain, 1);
  console.log(`plain (limits + guard, no namespaces), 1 worker: ${plainRate.toFixed(1)} samples/s; namespaces cost x${(plainRate / base).toFixed(2)} in time`);
}
