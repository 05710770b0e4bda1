// Throughput of the yuan-zh-en filter preset against the floor (plain JSONL read + parse + write of the same
// file), with 1 and WORKERS (default 2) threads (`workers`: this thread and WORKERS - 1 worker threads), and MinHash signatures per second. Run: `node bench/filter.mjs [MB]` after building packages/data-filter.
// Ratios are against the floor measured in this run; absolute numbers depend on the machine.
import { createReadStream, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MinHasher, chooseBands, runFilter } from '../packages/data-filter/dist/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const datasets = path.resolve(root, '..', 'shared', 'datasets');
const targetMB = Number(process.argv[2] ?? 20);

/** Real text (WikiText paragraphs, GSM8K, gaokao passages) when the datasets are present, else generated sentences. */
function corpus() {
  const texts = [];
  if (existsSync(datasets)) {
    for (const l of readFileSync(path.join(datasets, 'wikitext-2', 'test.txt'), 'utf8').split('\n')) if (l.length > 200) texts.push(l.trim());
    for (const l of readFileSync(path.join(datasets, 'gsm8k', 'train.jsonl'), 'utf8').trim().split('\n')) {
      const g = JSON.parse(l);
      texts.push(`${g.question}\n${g.answer}`);
    }
    for (const l of readFileSync(path.join(datasets, 'agieval', 'gaokao-chinese.jsonl'), 'utf8').trim().split('\n')) {
      const p = JSON.parse(l).passage;
      if (p) texts.push(p);
    }
  } else {
    console.log(`datasets not found at ${datasets}: using generated text`);
    const words = 'the of and to in is was for on that with as by at from his her which were are this be have an it not or their had';
    const w = words.split(' ');
    for (let i = 0; i < 5000; i++) texts.push(Array.from({ length: 150 }, (_, j) => w[(i * 31 + j * 17 + (j * j) % 7) % w.length]).join(' ') + '.');
  }
  return texts;
}

async function floor(input, output) {
  const out = createWriteStream(output);
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
    if (!line) continue;
    const rec = JSON.parse(line);
    if (!out.write(`${JSON.stringify(rec)}\n`)) await new Promise((r) => out.once('drain', r));
    n++;
  }
  await new Promise((r) => out.end(r));
  return n;
}

async function time(fn) {
  const t = performance.now();
  const result = await fn();
  return { seconds: (performance.now() - t) / 1000, result };
}

const dir = mkdtempSync(path.join(tmpdir(), 'yuan-bench-filter-'));
try {
  const texts = corpus();
  const input = path.join(dir, 'in.jsonl');
  const lines = [];
  let bytes = 0;
  // Each text appears with a numbered suffix so most documents are distinct; every 20th is an exact copy.
  for (let i = 0; bytes < targetMB * 1e6; i++) {
    const text = i % 20 === 19 ? texts[(i - 1) % texts.length] : `${texts[i % texts.length]}\n(${i})`;
    const line = `${JSON.stringify({ id: i, text })}\n`;
    lines.push(line);
    bytes += Buffer.byteLength(line);
  }
  writeFileSync(input, lines.join(''));
  const mb = statSync(input).size / 1e6;
  console.log(`input: ${lines.length} documents, ${mb.toFixed(1)} MB`);

  const f = await time(() => floor(input, path.join(dir, 'floor.jsonl')));
  const e = await time(() => runFilter({ inputs: [input], output: path.join(dir, 'empty.jsonl'), configObject: { filters: [] } }));
  const p = await time(() => runFilter({ inputs: [input], output: path.join(dir, 'preset.jsonl'), preset: 'yuan-zh-en', workers: 1 }));
  const workers = Number(process.env.WORKERS ?? 2);
  const pw = await time(() => runFilter({ inputs: [input], output: path.join(dir, 'preset-w.jsonl'), preset: 'yuan-zh-en', workers }));
  if (!readFileSync(path.join(dir, 'preset.jsonl')).equals(readFileSync(path.join(dir, 'preset-w.jsonl')))) throw new Error(`--workers ${workers} output differs from --workers 1`);
  const rate = (s) => mb / s;
  console.log(`floor (readline + JSON.parse + JSON.stringify + write): ${rate(f.seconds).toFixed(1)} MB/s`);
  console.log(`runFilter, empty pipeline:                           ${rate(e.seconds).toFixed(1)} MB/s  (${(rate(e.seconds) / rate(f.seconds)).toFixed(2)}x floor)`);
  console.log(`runFilter, preset yuan-zh-en:                        ${rate(p.seconds).toFixed(1)} MB/s  (${(rate(p.seconds) / rate(f.seconds)).toFixed(3)}x floor), ${Math.round(p.result.input.documents / p.seconds)} docs/s, kept ${p.result.result.kept}/${p.result.input.documents}`);
  console.log(`runFilter, preset yuan-zh-en, ${workers} workers:             ${rate(pw.seconds).toFixed(1)} MB/s  (${(rate(pw.seconds) / rate(f.seconds)).toFixed(3)}x floor; ${(p.seconds / pw.seconds).toFixed(2)}x --workers 1, limit ${workers}x), byte-identical output`);
  console.log('time per filter (s):', p.result.filters.map((s) => `${s.label} ${s.seconds.toFixed(2)}`).join(', '));

  const { bands, rows } = chooseBands(0.75, 128);
  const hasher = new MinHasher({ ngram: 5, numPerm: bands * rows, bands, rows, seed: 1 });
  const sample = texts.slice(0, 2000).map((t) => t.slice(0, 1000));
  const sampleMB = sample.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
  const m = await time(() => {
    let x = 0;
    for (let rep = 0; rep < 3; rep++) for (const t of sample) x ^= hasher.bandKeys(hasher.signature(t))[0];
    return x;
  });
  const sigs = (3 * sample.length) / m.seconds;
  console.log(`MinHash (${bands * rows} permutations, 5-token shingles, texts of <= 1000 chars, mean ${((sampleMB * 1e6) / sample.length).toFixed(0)} bytes): ${Math.round(sigs)} signatures/s (${((3 * sampleMB) / m.seconds).toFixed(1)} MB/s)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
