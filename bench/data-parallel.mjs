// Training tokens/s of `yuan train --dp D` (D ranks, one BLAS thread each) against one process using every core,
// same model, data and global batch, in one run. On a 2-core machine the limit for D = 2 is 2× (no other overlap).
// Then the same D with ZeRO 2 (gradients reduce-scattered bucket by bucket during a layer-by-layer backward) under
// `--recompute` (default none: each layer's tape kept, no forward twice) against the ZeRO 1 run: the target is
// ZeRO 2 ≥ 0.95× ZeRO 1 tokens/s with recompute none.
// Usage: node bench/data-parallel.mjs [--steps 6 --dp 2 --zero 1 --recompute none --repeats 5 --transport threads
// --hidden 128 --layers 4 --seq 128] (--repeats: ZeRO 1 / ZeRO 2 pairs, the median ratio reported)
// --smoke: 2 steps of a 2-layer model at hidden 32, sequence 32, on 400 lines, to check that the benchmark runs (the
// test suite does this).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    steps: { type: 'string', default: smoke ? '2' : '6' },
    dp: { type: 'string', default: '2' },
    zero: { type: 'string', default: '1' },
    recompute: { type: 'string', default: 'none' },
    repeats: { type: 'string', default: smoke ? '1' : '5' },
    transport: { type: 'string', default: 'threads' },
    hidden: { type: 'string', default: smoke ? '32' : '128' },
    layers: { type: 'string', default: smoke ? '2' : '4' },
    seq: { type: 'string', default: smoke ? '32' : '128' },
  },
});
const bin = path.resolve(import.meta.dirname, '../packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-bench-dp-'));
writeFileSync(
  path.join(tmp, 'text.txt'),
  Array.from(
    { length: smoke ? 400 : 4000 },
    (_, i) =>
      `Line ${i}: data parallel ranks each take a share of the global batch; ${i * 17} tokens later the gradients meet.`,
  ).join('\n'),
);
const run = (args, env = {}) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`yuan ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
};
run(['data', 'prepare', path.join(tmp, 'text.txt'), '--tokenizer', 'bytes', '--output', path.join(tmp, 'data')]);
const dp = Number(values.dp);
const common = [
  'train',
  '--preset',
  'tiny-lfa',
  '--set',
  `model.hiddenSize=${values.hidden}`,
  '--set',
  `model.numLayers=${values.layers}`,
  '--set',
  `train.seqLength=${values.seq}`,
  '--set',
  'train.microBatchSize=4',
  '--set',
  'train.validEvery=0',
  '--set',
  'train.checkpointEvery=0',
  '--data',
  path.join(tmp, 'data'),
  '--steps',
  values.steps,
  '--microbatches',
  String(2 * dp),
  '--json',
];
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
// steady-state tokens/s from the run's metrics: the first step (JIT compilation, first allocations, the ranks' first
// meeting) is a warm-up and left out; with 1 step, that step
const tps = (outDir) => {
  const steps = readFileSync(path.join(outDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const kept = steps.length > 1 ? steps.slice(1) : steps;
  return kept.reduce((a, m) => a + m.tokens, 0) / kept.reduce((a, m) => a + m.seconds, 0);
};
const singleDir = path.join(tmp, 'single');
run([...common, '--out', singleDir], { YUAN_NATIVE_THREADS: String(cpus().length) });
const single = tps(singleDir);
const dpRun = (zero, extra = []) => {
  const outDir = path.join(tmp, `dp-z${zero}`);
  run([...common, '--out', outDir, '--dp', String(dp), '--zero', zero, '--transport', values.transport, ...extra], {
    YUAN_NATIVE_THREADS: '1',
  });
  return tps(outDir);
};
const parallel = dpRun(values.zero);
console.log(`one process, ${cpus().length} BLAS threads: ${single.toFixed(0)} tokens/s`);
console.log(
  `--dp ${dp} --zero ${values.zero} (${values.transport}, 1 BLAS thread per rank): ${parallel.toFixed(0)} tokens/s`,
);
console.log(
  `ratio --dp ${dp} / one process: ${(parallel / single).toFixed(2)}× (limit on this ${cpus().length}-core machine: ${Math.min(dp, cpus().length)}×)`,
);
if (values.zero !== '2') {
  // ZeRO 2 against ZeRO 1 in alternating pairs (the first ZeRO 1 run is the one above), the median of the pairs'
  // ratios: on a shared machine the load drifts between runs, and a pair's two runs are the closest in time. From the
  // second pair on, every other pair runs ZeRO 2 first: on some machines the second run of a pair is the faster one
  // whatever it runs (bench/README.md, "Stop 30"), so a fixed order would favour ZeRO 2.
  const ratios = [];
  for (let i = 0; i < Number(values.repeats); i++) {
    const zero2First = i % 2 === 1;
    const early = zero2First ? dpRun('2', ['--recompute', values.recompute]) : undefined;
    const base = i === 0 ? parallel : dpRun(values.zero);
    const zero2 = early ?? dpRun('2', ['--recompute', values.recompute]);
    ratios.push(zero2 / base);
    console.log(
      `--dp ${dp} --zero 2 --recompute ${values.recompute}: ${zero2.toFixed(0)} tokens/s (--zero ${values.zero} beside it: ${base.toFixed(0)})`,
    );
  }
  const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
  console.log(
    `ratio --zero 2 --recompute ${values.recompute} / --zero ${values.zero}: ${median.toFixed(2)}× (median of ${ratios.length} pair(s): ${ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.95× with recompute none)`,
  );
}
