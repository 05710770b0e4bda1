// Throughput of the yuan-zh-en filter preset against the floor (plain JSONL read + parse + write of the same file),
// with 1 thread and with WORKERS (default: this machine's cores) worker threads, and MinHash
// signatures per second. Every run is a fresh `node` process, as a `yuan filter` run is: a run in a process that has
// already filtered would start with the filters compiled, which a real run never does. The runs are interleaved
// (floor, 1 thread, N threads, again) REPEAT times (default 2) and each configuration's best time is compared.
// Run from the repository root: `node bench/filter.mjs [MB] [--repeat R] [--smoke]` after `pnpm build` (default 100 MB: each thread pays
// about a second of JIT compilation and word-table warm-up, so a short input measures start-up, not throughput).
// Ratios are against the floor measured in this run; absolute numbers depend on the machine.
// --smoke: 0.5 MB, one round, at most 2 threads, MinHash on 200 texts once, to check that the benchmark runs (the test
// suite does this).
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchTexts, writeBenchCorpus } from './filter-corpus.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const datasets = path.resolve(root, '..', 'shared', 'datasets');

/** One measured run in this (fresh) process; prints its result as JSON. */
async function child(mode, input, output, workers) {
  const t = performance.now();
  if (mode === 'floor') {
    const out = createWriteStream(output);
    for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
      if (!line) continue;
      const rec = JSON.parse(line);
      if (!out.write(`${JSON.stringify(rec)}\n`)) await new Promise((r) => out.once('drain', r));
    }
    await new Promise((r) => out.end(r));
    console.log(JSON.stringify({ seconds: (performance.now() - t) / 1000 }));
    return;
  }
  const { runFilter } = await import('@yuan/data-filter');
  const report = await runFilter({ inputs: [input], output, preset: 'yuan-zh-en', workers });
  const seconds = (performance.now() - t) / 1000;
  console.log(
    JSON.stringify({
      seconds,
      documents: report.input.documents,
      kept: report.result.kept,
      filters: report.filters.map((s) => [s.label, s.seconds]),
    }),
  );
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      repeat: { type: 'string' },
      child: { type: 'string' },
      workers: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  if (values.child) return child(values.child, positionals[0], positionals[1], Number(values.workers ?? 1));
  const smoke = values.smoke;
  const targetMB = Number(positionals[0] ?? (smoke ? 0.5 : 100));
  const repeat = Number(values.repeat ?? (smoke ? 1 : 2));
  const workers = Number(process.env.WORKERS ?? (smoke ? Math.min(2, availableParallelism()) : availableParallelism()));
  const usage = (message) => {
    console.error(`bench/filter.mjs: ${message}`);
    process.exit(2);
  };
  if (!(targetMB > 0)) usage(`size "${positionals[0]}" must be a number of megabytes > 0`);
  if (!Number.isInteger(repeat) || repeat < 1) usage(`--repeat "${values.repeat}" must be a whole number >= 1`);
  if (!Number.isInteger(workers) || workers < 1) usage(`WORKERS="${process.env.WORKERS}" must be a whole number >= 1`);
  const { MinHasher, chooseBands } = await import('@yuan/data-filter');
  const dir = mkdtempSync(path.join(tmpdir(), 'yuan-bench-filter-'));
  try {
    const texts = benchTexts(datasets);
    const input = path.join(dir, 'in.jsonl');
    const documents = await writeBenchCorpus(input, targetMB, texts);
    const mb = statSync(input).size / 1e6;
    console.log(
      `input: ${documents} documents, ${mb.toFixed(1)} MB; ${availableParallelism()} cores, load ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}; best of ${repeat} interleaved fresh-process runs`,
    );

    const run = (mode, output, w = 1) =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [fileURLToPath(import.meta.url), '--child', mode, '--workers', String(w), input, path.join(dir, output)],
          { encoding: 'utf8' },
        ),
      );
    const runs = { floor: [], one: [], many: [] };
    for (let r = 0; r < repeat; r++) {
      runs.floor.push(run('floor', 'floor.jsonl'));
      runs.one.push(run('filter', 'one.jsonl', 1));
      runs.many.push(run('filter', 'many.jsonl', workers));
      if (!readFileSync(path.join(dir, 'one.jsonl')).equals(readFileSync(path.join(dir, 'many.jsonl'))))
        throw new Error(`--workers ${workers} output differs from --workers 1`);
    }
    const best = (list) => list.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const [f, one, many] = [best(runs.floor), best(runs.one), best(runs.many)];
    const all = (list) => list.map((x) => x.seconds.toFixed(2)).join(', ');
    const rate = (s) => mb / s;
    console.log(
      `floor (readline + JSON.parse + JSON.stringify + write): ${rate(f.seconds).toFixed(1)} MB/s  (runs ${all(runs.floor)} s)`,
    );
    console.log(
      `preset yuan-zh-en, --workers 1:  ${rate(one.seconds).toFixed(1)} MB/s  ${(f.seconds / one.seconds).toFixed(3)}x floor, ${Math.round(one.documents / one.seconds)} docs/s, kept ${one.kept}/${one.documents}  (runs ${all(runs.one)} s)`,
    );
    console.log(
      `preset yuan-zh-en, --workers ${workers}:  ${rate(many.seconds).toFixed(1)} MB/s  ${(f.seconds / many.seconds).toFixed(3)}x floor; ${(one.seconds / many.seconds).toFixed(2)}x --workers 1 (limit ${workers}x), byte-identical output  (runs ${all(runs.many)} s)`,
    );
    console.log(
      'time per filter, --workers 1 (s):',
      one.filters.map(([label, s]) => `${label} ${s.toFixed(2)}`).join(', '),
    );

    const { bands, rows } = chooseBands(0.75, 128);
    const hasher = new MinHasher({ ngram: 5, numPerm: bands * rows, bands, rows, seed: 1 });
    const sample = texts.slice(0, smoke ? 200 : 2000).map((t) => t.slice(0, 1000));
    const sampleMB = sample.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
    const reps = smoke ? 1 : 3;
    const t0 = performance.now();
    let _sink = 0; // keeps each signature's result alive
    for (let rep = 0; rep < reps; rep++) for (const t of sample) _sink ^= hasher.bandKeys(hasher.signature(t))[0];
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `MinHash (${bands * rows} permutations, 5-token shingles, texts of <= 1000 chars, mean ${((sampleMB * 1e6) / sample.length).toFixed(0)} bytes): ${Math.round((reps * sample.length) / seconds)} signatures/s (${((reps * sampleMB) / seconds).toFixed(1)} MB/s)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
