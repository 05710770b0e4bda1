// Tokenization throughput: YUAN's SentencePiece model in @yuan/tokenizer against the Python `sentencepiece` package on
// the same lines (both plain SentencePiece EncodeAsIds, one thread), and `prepareData` (yuan data prepare) with
// 1 and WORKERS (default 2) worker threads, each in a fresh `node` process as a `yuan data prepare` run is (in this
// process the tokenizer is already compiled, which would favour one thread). Ratios are against baselines measured
// in this run.
// Run after building packages/data: `node bench/prepare.mjs [MB]`. Python: PYTHON, else the first of .venv-clients
// (made by .ci/run), bench/.venv and python3 that imports `sentencepiece`, else bench/.venv created with it installed;
// the comparison is skipped when none can import it.
// --smoke: 0.05 MB, one run each, and no install of sentencepiece (the comparison is skipped without it), to check that
// the benchmark runs (the test suite does this).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareData } from '@yuan/data';
import { loadSentencePiece } from '@yuan/tokenizer';

// `--child WORKERS INPUT OUT`: one timed prepareData run in this fresh process, printed as JSON.
if (process.argv[2] === '--child') {
  const [workers, input, out, model] = process.argv.slice(3);
  const t0 = performance.now();
  const tok = await loadSentencePiece(model);
  const r = await prepareData({
    inputs: [input],
    output: out,
    format: 'yuan',
    tokenizer: tok,
    tokenizerSpec: { name: 'sentencepiece', path: model },
    validFraction: 0.01,
    workers: Number(workers),
  });
  console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, tokens: r.tokens }));
  process.exit(0);
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * A Python that imports `sentencepiece`: .venv-clients (.ci/run installs it there), bench/.venv or python3. With
 * `install`, when none has it, bench/.venv is created with `sentencepiece` installed (pip's configured index or
 * mirror). Undefined when there is none.
 */
function benchPython(install) {
  const venv = path.join(root, 'bench', '.venv');
  const py = path.join(venv, 'bin', 'python');
  const has = (p) => spawnSync(p, ['-c', 'import sentencepiece'], { stdio: 'ignore' }).status === 0;
  const found = [path.join(root, '.venv-clients', 'bin', 'python'), py, 'python3'].find(has);
  if (found || !install) return found;
  console.log('installing sentencepiece into bench/.venv for the comparison ...');
  if (!existsSync(py)) spawnSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' });
  if (existsSync(py))
    spawnSync(py, ['-m', 'pip', 'install', '-q', 'sentencepiece'], { stdio: 'ignore', timeout: 300_000 });
  return has(py) ? py : undefined;
}
const smoke = process.argv.includes('--smoke');
const positionals = process.argv.slice(2).filter((a) => a !== '--smoke');
const shared = path.resolve(root, '..', 'shared');
const model = path.join(shared, 'fixtures', 'yuan2-tokenizer', 'tokenizer.model');
const targetMB = Number(positionals[0] ?? (smoke ? 0.05 : 8));
if (!existsSync(model)) {
  console.log(`skipped: ${model} not found`);
  process.exit(0);
}

// Distinct real text, no line repeated (a repeated line would flatter a tokenizer that caches words).
const texts = new Set();
for (const f of ['valid.txt', 'test.txt'])
  for (const l of readFileSync(path.join(shared, 'datasets', 'wikitext-2', f), 'utf8').split('\n'))
    if (l.trim().length > 80) texts.add(l.trim());
for (const l of readFileSync(path.join(shared, 'datasets', 'gsm8k', 'train.jsonl'), 'utf8')
  .trim()
  .split('\n')) {
  const g = JSON.parse(l);
  texts.add(`${g.question} ${g.answer}`.replace(/\n/g, ' '));
}
for (const f of readdirSync(path.join(shared, 'datasets', 'agieval')).filter((x) => x.endsWith('.jsonl'))) {
  for (const l of readFileSync(path.join(shared, 'datasets', 'agieval', f), 'utf8')
    .trim()
    .split('\n')) {
    const r = JSON.parse(l);
    for (const t of [r.passage, r.question]) if (t && t.length > 40) texts.add(t.replace(/\n/g, ' '));
  }
}
const lines = [];
let bytes = 0;
for (const t of texts) {
  if (bytes >= targetMB * 1e6) break;
  lines.push(t);
  bytes += Buffer.byteLength(t) + 1;
}
const dir = mkdtempSync(path.join(tmpdir(), 'yuan-bench-prepare-'));
try {
  const file = path.join(dir, 'lines.txt');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const mb = bytes / 1e6;
  console.log(
    `input: ${lines.length} distinct lines (WikiText-2, GSM8K, AGIEval incl. gaokao Chinese), ${mb.toFixed(smoke ? 2 : 1)} MB`,
  );

  const tok = await loadSentencePiece(model);
  const t0 = performance.now();
  let tokens = 0;
  let check = 0; // an order-sensitive checksum of every id, compared with Python's
  for (const l of lines) {
    const ids = tok.encodeSentencePiece(l);
    tokens += ids.length;
    for (const id of ids) check = (Math.imul(check, 31) + id) >>> 0;
  }
  const ours = (performance.now() - t0) / 1000;
  console.log(
    `@yuan/tokenizer SentencePiece (1 thread):   ${Math.round(tokens / ours).toLocaleString('en-US')} tokens/s, ${(mb / ours).toFixed(2)} MB/s (${tokens} tokens)`,
  );

  const python = process.env.PYTHON ?? benchPython(!smoke);
  const script = [
    'import sys, time, sentencepiece as spm',
    'sp = spm.SentencePieceProcessor(model_file=sys.argv[1])',
    "lines = open(sys.argv[2], encoding='utf-8', newline='').read().split('\\n')[:-1]",
    'sp.encode(lines[:200])',
    't = time.perf_counter(); out = [sp.encode(l) for l in lines]; s = time.perf_counter() - t',
    'n = 0; c = 0',
    'for ids in out:',
    '    n += len(ids)',
    '    for i in ids: c = (c * 31 + i) & 0xffffffff',
    'print(n, s, spm.__version__, c)',
  ].join('\n');
  const py = python ? spawnSync(python, ['-c', script, model, file], { encoding: 'utf8' }) : undefined;
  if (!py) {
    console.log(
      `Python sentencepiece: skipped (no Python imports sentencepiece: set PYTHON, or .ci/run installs it into .venv-clients)`,
    );
  } else if (py.status === 0) {
    const [n, s, version, pyCheck] = py.stdout.trim().split(' ');
    const pyRate = Number(n) / Number(s);
    console.log(
      `Python sentencepiece ${version} (1 thread):   ${Math.round(pyRate).toLocaleString('en-US')} tokens/s, ${(mb / Number(s)).toFixed(2)} MB/s (${n} tokens${Number(pyCheck) === check ? ', the same ids' : `, IDS DIFFER (count ${tokens})`})`,
    );
    console.log(`ratio @yuan/tokenizer / Python sentencepiece: ${(tokens / ours / pyRate).toFixed(2)}x`);
  } else {
    console.log(
      `Python sentencepiece: skipped (${python}: ${(py.stderr || py.error?.message || '').trim().split('\n').pop()})`,
    );
  }

  const workers = Number(process.env.WORKERS ?? 2);
  // The same lines 3 times over, so that each worker thread's start (≈ 1 s: Node + loading the 135k-piece model) weighs less.
  const big = path.join(dir, 'big.txt');
  writeFileSync(big, `${lines.join('\n')}\n`.repeat(3));
  const run = (w) => {
    const out = path.join(dir, `out-${w}`);
    rmSync(out, { recursive: true, force: true });
    return {
      ...JSON.parse(
        execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', String(w), big, out, model], {
          encoding: 'utf8',
        }),
      ),
      out,
    };
  };
  // Interleaved, best of two (the machine is shared); one each with --smoke.
  const best = (a, b) => (b.seconds < a.seconds ? b : a);
  let one = run(1);
  let many = run(workers);
  if (!smoke) {
    one = best(one, run(1));
    many = best(many, run(workers));
  }
  const same = readdirSync(one.out).every((f) =>
    readFileSync(path.join(one.out, f)).equals(readFileSync(path.join(many.out, f))),
  );
  console.log(
    `yuan data prepare --format yuan, 1 worker:  ${Math.round(one.tokens / one.seconds).toLocaleString('en-US')} tokens/s, ${((3 * mb) / one.seconds).toFixed(2)} MB/s (${(3 * mb).toFixed(smoke ? 2 : 1)} MB; folder + Megatron .bin/.idx)`,
  );
  console.log(
    `yuan data prepare --format yuan, ${workers} workers: ${Math.round(many.tokens / many.seconds).toLocaleString('en-US')} tokens/s (${(one.seconds / many.seconds).toFixed(2)}x 1 worker, limit ${workers}x), ${same ? 'byte-identical' : 'OUTPUT DIFFERS'}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
