// One causal attention call, forward + backward, with @yuan/tensor's `causalAttention` on the native backend (the
// fused FlashAttention-2 kernel of @yuan/tensor-native) against PyTorch's `scaled_dot_product_attention(is_causal=True)`
// (its CPU flash kernel), in the same run: time and peak memory at each sequence length.
// For each S, each engine runs in a fresh process (`--child` here, bench/attention_torch.py for torch) that makes
// q, k, v [B, A, S, d] and dy and reads its RSS. Then both run one warm-up round and ROUNDS timed rounds, alternating
// round by round (yuan, torch, yuan, torch, ...), so that load from other work on the machine slows both alike; the
// median round is reported. Memory: each process's peak RSS, and the attention's own part, peak − RSS before the
// first call (the outputs, the gradients and whatever the engine holds while it runs).
// Usage: node bench/attention.mjs [--seqs 1024,2048,4096,8192] [--heads 16] [--head-dim 128] [--batch 1]
//        [--threads 2] [--rounds 3] [--engines yuan,torch] [--python PY]
// Engines: yuan (fused), torch, ops (@yuan/tensor's op-by-op attention on the native backend, which materialises the
// [B, A, S, S] scores: slow and large, leave it out at long S). Python: --python, else TORCH_PYTHON, else the first of
// .venv-clients, bench/.venv and python3 that imports torch, else bench/.venv made with torch installed (pip's index
// or mirror); without one the torch column is a one-line skip.
// --smoke: S 64 and 200, 2 heads of 16, one round, no torch install, to check that the benchmark runs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);

// `--child ENGINE B A S D`: q, k, v and dy in this fresh process, then the protocol of bench/attention_torch.py.
if (process.argv[2] === '--child') {
  const [engine, ...dims] = process.argv.slice(3);
  const [b, a, s, d] = dims.map(Number);
  const { causalAttention, initBackend, setFusedAttention, tf } = await import('@yuan/tensor');
  await initBackend('native');
  if (engine === 'ops') setFusedAttention(false);
  let seed = 1;
  const random = (shape) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      v[i] = seed / 2 ** 31 - 1;
    }
    return tf.tensor(v, shape);
  };
  const [q, k, v, dy] = [0, 1, 2, 3].map(() => random([b, a, s, d]));
  const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  say({ rssBefore: process.memoryUsage.rss() / 2 ** 20 });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === 'exit') break;
    let t0 = 0;
    let t1 = 0;
    const grads = tf.grads((x, y, z) => {
      t0 = performance.now();
      const o = causalAttention(x, y, z);
      t1 = performance.now();
      return o;
    })([q, k, v], dy);
    const t2 = performance.now();
    tf.dispose(grads);
    say({ fwd: (t1 - t0) / 1000, bwd: (t2 - t1) / 1000 });
  }
  say({ peakRss: process.resourceUsage().maxRSS / 1024 });
  process.exit(0);
}

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    seqs: { type: 'string', default: smoke ? '64,200' : '1024,2048,4096,8192' },
    heads: { type: 'string', default: smoke ? '2' : '16' },
    'head-dim': { type: 'string', default: smoke ? '16' : '128' },
    batch: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: smoke ? '1' : '3' },
    engines: { type: 'string', default: 'yuan,torch' },
    python: { type: 'string', default: process.env.TORCH_PYTHON },
    smoke: { type: 'boolean', default: false },
  },
});
const [batch, heads, headDim, threads, rounds] = [
  values.batch,
  values.heads,
  values['head-dim'],
  values.threads,
  values.rounds,
].map(Number);
const seqs = values.seqs.split(',').map(Number);
const engines = values.engines.split(',');
for (const e of engines)
  if (!['yuan', 'torch', 'ops'].includes(e))
    throw new Error(`bench/attention: unknown engine "${e}" (engines: yuan, torch, ops)`);
const torchScript = path.join(here, 'attention_torch.py');

/**
 * A Python that imports torch: the given one, else .venv-clients (.ci/run), bench/.venv or python3, else (with
 * `install`) bench/.venv created with torch installed. Returns { python } or { skipped: reason }.
 */
function torchPython(given, install) {
  const probe = (p) => spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' });
  if (given) {
    const r = probe(given);
    return r.status === 0
      ? { python: given }
      : { skipped: `${given} cannot import torch: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
  }
  const venv = path.join(here, '.venv');
  const py = path.join(venv, 'bin', 'python');
  const found = [path.join(root, '.venv-clients', 'bin', 'python'), py, 'python3'].find((p) => probe(p).status === 0);
  if (found) return { python: found };
  if (!install)
    return {
      skipped: 'no Python imports torch (give --python or TORCH_PYTHON; the full run installs torch into bench/.venv)',
    };
  console.log('installing torch into bench/.venv for the comparison ...');
  if (!existsSync(py)) spawnSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' });
  if (existsSync(py)) spawnSync(py, ['-m', 'pip', 'install', '-q', 'torch'], { stdio: 'ignore', timeout: 1_800_000 });
  return probe(py).status === 0
    ? { python: py }
    : { skipped: 'torch could not be installed into bench/.venv (pip install torch failed)' };
}

const torch = engines.includes('torch') ? torchPython(values.python, !smoke) : { skipped: 'not asked for (--engines)' };
/** A fresh process of `engine` at sequence length s: `round()` runs one forward + backward, `exit()` gives its peak RSS. */
async function start(engine, s) {
  const dims = [batch, heads, s, headDim].map(String);
  const env = { ...process.env, YUAN_NATIVE_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const child =
    engine === 'torch'
      ? spawn(torch.python, [torchScript, ...dims, String(threads)], { env, stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', engine, ...dims], {
          env,
          stdio: ['pipe', 'pipe', 'inherit'],
        });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (command) => {
    if (command) child.stdin.write(`${command}\n`);
    const { value, done } = await lines.next();
    if (done) throw new Error(`bench/attention: the ${engine} process at S ${s} exited early (out of memory?)`);
    return JSON.parse(value);
  };
  const hello = await next();
  return { rssBefore: hello.rssBefore, round: () => next('round'), exit: () => next('exit') };
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const active = engines.filter((e) => e !== 'torch' || torch.python);

console.log(
  `causal attention forward + backward, B ${batch}, ${heads} heads, head dim ${headDim}, float32, ${threads} threads; ${rounds} timed round(s) each after 1 warm-up, the engines alternating round by round`,
);
if (!torch.python) console.log(`torch: skipped (${torch.skipped})`);
console.log(
  `${'S'.padStart(5)}  ${'engine'.padEnd(6)} ${'fwd s'.padStart(7)} ${'bwd s'.padStart(7)} ${'total s'.padStart(8)} ${'GFLOP/s'.padStart(8)} ${'peak RSS MiB'.padStart(13)} ${'attention MiB'.padStart(14)}`,
);
const ratios = [];
for (const s of seqs) {
  const results = Object.fromEntries(active.map((e) => [e, { fwd: [], bwd: [] }]));
  const procs = {};
  for (const e of active) procs[e] = await start(e, s);
  for (let r = 0; r <= rounds; r++) {
    for (const e of active) {
      const t = await procs[e].round();
      if (r === 0) continue; // warm-up
      results[e].fwd.push(t.fwd);
      results[e].bwd.push(t.bwd);
    }
  }
  for (const e of active) {
    const { peakRss } = await procs[e].exit();
    results[e].peak = peakRss;
    results[e].own = peakRss - procs[e].rssBefore;
  }
  // causal: half of the S x S scores; forward 2 products, backward 5 (FlashAttention-2's count)
  const flops = 3.5 * 2 * batch * heads * s * s * headDim;
  for (const e of active) {
    const r = results[e];
    r.total = median(r.fwd.map((f, i) => f + r.bwd[i]));
    const line = `${String(s).padStart(5)}  ${e.padEnd(6)} ${median(r.fwd).toFixed(3).padStart(7)} ${median(r.bwd).toFixed(3).padStart(7)} ${r.total.toFixed(3).padStart(8)} ${(flops / r.total / 1e9).toFixed(1).padStart(8)} ${r.peak.toFixed(0).padStart(13)} ${r.own.toFixed(0).padStart(14)}`;
    console.log(line);
  }
  if (results.yuan && results.torch) {
    const y = results.yuan;
    const t = results.torch;
    ratios.push(
      `S ${s}: time ${(y.total / t.total).toFixed(2)}x, peak RSS ${(y.peak / t.peak).toFixed(2)}x, attention memory ${(y.own / Math.max(t.own, 1)).toFixed(2)}x`,
    );
  }
}
if (ratios.length) {
  console.log('yuan / torch (time target <= 1.0x, memory within 2x):');
  for (const r of ratios) console.log(`  ${r}`);
}
