// Decode tokens/s of the yuan2-2b shape (random weights) for every weight format, against PyTorch (transformers'
// LLaMA of the same shape, fp32 and bf16) and llama.cpp (node-llama-cpp@3.21.1 on a GGUF of the same shape: F16, Q8_0,
// Q4_0), in one run; plus this machine's memory bandwidth (a read of a 1 GiB buffer on the decode threads) and each
// engine's fraction of its limit, bandwidth / bytes of weights read per token. Every engine runs in its own process,
// one after another (their weights would not fit together), `--rounds` times in turn; each prints its best round.
//
//   node bench/decode.mjs [--tokens 32 --prompt 8 --rounds 1 --formats fp32,bf16,int8,int4 --python PY --no-torch --no-llama]
//                        [--spin N]   # each yuan format again with YUAN_DECODE_SPIN_US=N (idle decode workers spin N µs)
//   node bench/decode.mjs --smoke        # a tiny shape, one round (the bench smoke test)
//
// PyTorch: --python, else TORCH_PYTHON, else .venv-clients/bin/python or bench/.venv/bin/python when they have torch
// and transformers, else bench/.venv is made and they are installed from pip's index (not with --smoke). llama.cpp:
// bench/.llama/node_modules/node-llama-cpp (installed there with npm on first use, not with --smoke); the GGUF is written
// by bench/decode_gguf.py with the `gguf` package. A missing baseline prints one `skipped (...)` line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const { values: opt } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    tokens: { type: 'string' },
    prompt: { type: 'string' },
    rounds: { type: 'string' },
    formats: { type: 'string' },
    python: { type: 'string' },
    'no-torch': { type: 'boolean' },
    'no-llama': { type: 'boolean' },
    spin: { type: 'string' },
    child: { type: 'string' },
    shape: { type: 'string' },
    file: { type: 'string' },
  },
});
const smoke = Boolean(opt.smoke);
const threads = Number(process.env.YUAN_NATIVE_THREADS) || cpus().length;
const shape = opt.shape
  ? JSON.parse(opt.shape)
  : smoke
    ? { vocab: 512, hidden: 128, layers: 2, heads: 4, ffn: 512 }
    : { vocab: 135040, hidden: 2048, layers: 24, heads: 32, ffn: 8192 };
const tokens = Number(opt.tokens ?? (smoke ? 4 : 32));
const prompt = Number(opt.prompt ?? (smoke ? 4 : 8));
const spin = opt.spin;
for (const [k, v] of Object.entries({
  tokens,
  prompt,
  rounds: Number(opt.rounds ?? 1),
})) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`error: --${k} must be a positive integer`);
    process.exit(2);
  }
}
if (spin !== undefined && !/^\d+$/.test(spin)) {
  console.error('error: --spin must be the microseconds an idle decode worker spins (e.g. 200)');
  process.exit(2);
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

// ---- children: one engine each, printing one JSON line ----
if (opt.child === 'yuan') {
  const { resolveConfig, getPreset } = await import('@yuan/core');
  const { lfaAttention } = await import('@yuan/attention-lfa');
  const { initInferenceModel, weightBytes } = await import('@yuan/model');
  const { initBackend, weightFormatPlugins, loadDecodeKernels } = await import('@yuan/tensor');
  await initBackend('native');
  const decodeSpin = (await loadDecodeKernels()).kernels.setDecodeSpin(-1);
  const format = weightFormatPlugins.find((f) => f.name === opt.file);
  const config = resolveConfig(getPreset('yuan2-2b').config, {
    model: {
      vocabSize: shape.vocab,
      hiddenSize: shape.hidden,
      numLayers: shape.layers,
      numHeads: shape.heads,
      ffnSize: shape.ffn,
    },
  });
  const t0 = performance.now();
  const model = await initInferenceModel(config, lfaAttention, 0, { format });
  const start = (performance.now() - t0) / 1000;
  const dec = model.decoder;
  const seq = dec.newSequence();
  let logits = dec.forward([{ sequence: seq, tokens: Array.from({ length: prompt }, (_, i) => i + 1) }]);
  // a plain loop: reduce's callback per logit cost ~4 ms a token at the 135k vocab (bench/README.md, "Where a decode
  // token goes")
  const argmax = (row) => {
    let b = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[b]) b = i;
    return b;
  };
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  for (let i = 0; i < tokens; i++) logits = dec.forward([{ sequence: seq, tokens: [argmax(logits)] }]);
  const dt = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(c1);
  console.log(
    JSON.stringify({
      tokensPerSecond: tokens / dt,
      tokensPerCpuSecond: tokens / ((cpu.user + cpu.system) / 1e6),
      bytes: weightBytes(dec.weights),
      rssMB: rssMB(),
      startSeconds: start,
      workers: decodeSpin === 0 ? 'sleep' : `spin ${decodeSpin} µs`,
    }),
  );
  process.exit(0);
}
if (opt.child === 'llama') {
  const { getLlama } = await import(
    pathToFileURL(path.join(here, '.llama', 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href
  );
  const llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: opt.file, gpuLayers: 0, useMmap: true });
  const context = await model.createContext({ contextSize: 512, threads, batchSize: 64 });
  const sequence = context.getSequence();
  let n = 0;
  let t1 = 0;
  let c1;
  for await (const _ of sequence.evaluate(
    Array.from({ length: prompt }, (_, i) => 300 + i),
    { temperature: 0 },
  )) {
    if (n === 0) {
      t1 = performance.now(); // the first token ends the prompt; time the next `tokens`
      c1 = process.cpuUsage();
    }
    if (++n > tokens) break;
  }
  const dt = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(c1);
  console.log(
    JSON.stringify({
      tokensPerSecond: tokens / dt,
      tokensPerCpuSecond: tokens / ((cpu.user + cpu.system) / 1e6),
      rssMB: rssMB(),
    }),
  );
  process.exit(0);
}

// ---- the parent ----
const { loadDecodeKernels } = await import('@yuan/tensor');
const { kernels, reason } = await loadDecodeKernels();
if (!kernels) {
  console.log(`skipped (the native addon is not built: ${reason})`);
  process.exit(0);
}
kernels.setDecodeThreads(threads);

/** Memory bandwidth: the best of 5 reads of a buffer far larger than the caches, on the decode threads. */
function bandwidth() {
  const x = new Float32Array((smoke ? 64 : 1024) * 2 ** 18).fill(1);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    kernels.readAll(x);
    best = Math.min(best, performance.now() - t0);
  }
  return x.byteLength / (best / 1000) / 1e9;
}

function run(args, what, env = {}) {
  const r = spawnSync(args[0], args.slice(1), {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, YUAN_NATIVE_THREADS: String(threads), ...env },
  });
  const line = (r.stdout ?? '').trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    return {
      error: `${what} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-2).join(' ').slice(0, 300)}`,
    };
  }
}

function pythonWith(modules) {
  const ok = (py) =>
    py && existsSync(py) && spawnSync(py, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' }).status === 0;
  const candidates = [
    opt.python,
    process.env.TORCH_PYTHON,
    path.join(root, '.venv-clients', 'bin', 'python'),
    path.join(here, '.venv', 'bin', 'python'),
  ];
  const found = candidates.find(ok);
  if (found || smoke) return found;
  const venv = path.join(here, '.venv');
  console.log(`installing ${modules.join(', ')} into bench/.venv for the comparison ...`);
  if (!existsSync(path.join(venv, 'bin', 'python'))) spawnSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' });
  spawnSync(path.join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '-q', ...modules], {
    stdio: 'ignore',
    timeout: 1_200_000,
  });
  return ok(path.join(venv, 'bin', 'python')) ? path.join(venv, 'bin', 'python') : undefined;
}

function llamaModule() {
  const entry = path.join(here, '.llama', 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (existsSync(entry) || smoke) return existsSync(entry) ? entry : undefined;
  console.log('installing node-llama-cpp@3.21.1 into bench/.llama for the comparison ...');
  mkdirSync(path.join(here, '.llama'), { recursive: true });
  if (!existsSync(path.join(here, '.llama', 'package.json')))
    writeFileSync(path.join(here, '.llama', 'package.json'), '{"private": true}\n');
  spawnSync('npm', ['install', '--no-audit', '--no-fund', 'node-llama-cpp@3.21.1'], {
    cwd: path.join(here, '.llama'),
    stdio: 'ignore',
    timeout: 1_200_000,
  });
  return existsSync(entry) ? entry : undefined;
}

const params = (() => {
  const { vocab: v, hidden: h, layers: l, ffn: f } = shape;
  return { embed: v * h, layer: 4 * h * h + 3 * h * f, norms: (2 * l + 1) * h };
})();
const llamaBytes = (perWeight) => (params.embed + shape.layers * params.layer) * perWeight + params.norms * 4;

const bw = bandwidth();
const formats = (opt.formats ?? 'fp32,bf16,int8,int4').split(',');
// each format as `yuan generate` runs it (idle decode workers as YUAN_DECODE_SPIN_US says: by default 1000 µs)
const engines = formats.map((f) => ({
  name: `yuan ${f}`,
  args: [process.execPath, fileURLToPath(import.meta.url), '--child', 'yuan', '--file', f],
}));
// --spin N: each format again with its idle decode workers spinning N µs before they sleep (YUAN_DECODE_SPIN_US;
// llama.cpp's threads spin); alternate rounds change the order (--rounds 2), as the run after another can be faster
if (spin !== undefined)
  for (const f of formats)
    engines.push({
      name: `yuan ${f} spin=${spin}`,
      args: [process.execPath, fileURLToPath(import.meta.url), '--child', 'yuan', '--file', f],
      env: { YUAN_DECODE_SPIN_US: spin },
    });
const py = opt['no-torch'] ? undefined : pythonWith(['torch', 'transformers']);
if (opt['no-torch']) console.log('PyTorch: skipped (--no-torch)');
else if (!py) console.log('PyTorch: skipped (no Python with torch and transformers: give --python or TORCH_PYTHON)');
else
  for (const dtype of ['fp32', 'bf16'])
    engines.push({
      name: `torch ${dtype}`,
      args: [
        py,
        path.join(here, 'decode_torch.py'),
        '--dtype',
        dtype,
        '--threads',
        String(threads),
        '--tokens',
        String(tokens),
        '--prompt',
        String(prompt),
        ...Object.entries(shape).flatMap(([k, v]) => [`--${k}`, String(v)]),
      ],
    });
const work = mkdtempSync(path.join(tmpdir(), 'yuan-bench-decode-'));
const gguf = opt['no-llama'] ? undefined : pythonWith(['gguf', 'numpy']);
const llama = opt['no-llama'] ? undefined : llamaModule();
if (opt['no-llama']) console.log('llama.cpp: skipped (--no-llama)');
else if (!llama) console.log('llama.cpp: skipped (node-llama-cpp is not installed in bench/.llama)');
else if (!gguf) console.log('llama.cpp: skipped (no Python with the gguf package to write the model)');
else {
  for (const [type, perWeight] of [
    ['F16', 2],
    ['Q8_0', 34 / 32],
    ['Q4_0', 18 / 32],
  ]) {
    engines.push({
      name: `llama.cpp ${type}`,
      type,
      bytes: llamaBytes(perWeight),
      file: path.join(work, `${type}.gguf`),
    });
  }
}

console.log(
  `shape: vocab ${shape.vocab}, hidden ${shape.hidden}, ${shape.layers} layers, ${shape.heads} heads, ffn ${shape.ffn}; ${tokens} tokens after a ${prompt}-token prompt, ${threads} threads; load average ${(
    await import('node:os')
  )
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}`,
);
console.log(`memory bandwidth (read, ${threads} threads): ${bw.toFixed(1)} GB/s`);
const results = new Map();
try {
  for (let round = 0; round < Number(opt.rounds ?? 1); round++) {
    // every other round in reverse order, so that no engine always runs first or right after another (on some machines
    // a process runs faster right after another one; bench/README.md, "Stop 30")
    for (const e of round % 2 === 0 ? engines : [...engines].reverse()) {
      let r;
      if (e.type) {
        if (!existsSync(e.file)) {
          const w = spawnSync(
            gguf,
            [
              path.join(here, 'decode_gguf.py'),
              e.file,
              '--type',
              e.type,
              ...Object.entries(shape).flatMap(([k, v]) => [`--${k}`, String(v)]),
            ],
            { encoding: 'utf8' },
          );
          if (w.status !== 0) r = { error: `writing the GGUF failed: ${w.stderr.trim().split('\n').pop()}` };
        }
        r ??= run(
          [
            process.execPath,
            fileURLToPath(import.meta.url),
            '--child',
            'llama',
            '--file',
            e.file,
            '--tokens',
            String(tokens),
            '--prompt',
            String(prompt),
          ],
          e.name,
        );
        if (!r.error) r.bytes = e.bytes;
      } else {
        r = run(
          [
            ...e.args,
            '--tokens',
            String(tokens),
            '--prompt',
            String(prompt),
            ...(e.name.startsWith('yuan') ? ['--shape', JSON.stringify(shape)] : []),
          ],
          e.name,
          e.env,
        );
      }
      const prev = results.get(e.name);
      if (!prev || prev.error || (!r.error && r.tokensPerSecond > prev.tokensPerSecond)) results.set(e.name, r);
      console.log(
        `  round ${round + 1}: ${e.name}: ${r.error ?? `${r.tokensPerSecond.toFixed(2)} tokens/s`}${r.workers ? ` (idle decode workers ${r.workers})` : ''}`,
      );
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const pad = (s, n) => String(s).padEnd(n);
console.log(
  `${pad('engine', 16)} ${pad('tokens/s', 9)} ${pad('GB/token', 9)} ${pad('limit t/s', 10)} ${pad('of limit', 9)} ${pad('RSS MB', 8)} ${pad('start s', 8)} tokens per CPU-second`,
);
for (const [name, r] of results) {
  if (r.error) {
    console.log(`${pad(name, 16)} skipped (${r.error})`);
    continue;
  }
  const limit = (bw * 1e9) / r.bytes;
  console.log(
    `${pad(name, 16)} ${pad(r.tokensPerSecond.toFixed(2), 9)} ${pad((r.bytes / 1e9).toFixed(2), 9)} ${pad(limit.toFixed(1), 10)} ${pad(`${((100 * r.tokensPerSecond) / limit).toFixed(0)}%`, 9)} ${pad(r.rssMB.toFixed(0), 8)} ${pad(r.startSeconds?.toFixed(1) ?? '-', 8)} ${r.tokensPerCpuSecond?.toFixed(2) ?? '-'}`,
  );
}
const ratio = (a, b) =>
  results.get(a)?.tokensPerSecond && results.get(b)?.tokensPerSecond
    ? `${(results.get(a).tokensPerSecond / results.get(b).tokensPerSecond).toFixed(2)}x`
    : 'n/a';
const cpuRatio = (a, b) =>
  results.get(a)?.tokensPerCpuSecond && results.get(b)?.tokensPerCpuSecond
    ? `${(results.get(a).tokensPerCpuSecond / results.get(b).tokensPerCpuSecond).toFixed(2)}x`
    : 'n/a';
console.log(
  `per CPU-second (all threads' time; what a loaded machine does not distort): bf16 / llama.cpp F16 ${cpuRatio('yuan bf16', 'llama.cpp F16')}, int8 / Q8_0 ${cpuRatio('yuan int8', 'llama.cpp Q8_0')}, int4 / Q4_0 ${cpuRatio('yuan int4', 'llama.cpp Q4_0')}, bf16 / torch bf16 ${cpuRatio('yuan bf16', 'torch bf16')}`,
);
if (spin !== undefined)
  console.log(
    `with YUAN_DECODE_SPIN_US=${spin}: bf16 / llama.cpp F16 ${ratio(`yuan bf16 spin=${spin}`, 'llama.cpp F16')}, int8 / Q8_0 ${ratio(`yuan int8 spin=${spin}`, 'llama.cpp Q8_0')}, int4 / Q4_0 ${ratio(`yuan int4 spin=${spin}`, 'llama.cpp Q4_0')}; per CPU-second ${cpuRatio(`yuan bf16 spin=${spin}`, 'llama.cpp F16')}, ${cpuRatio(`yuan int8 spin=${spin}`, 'llama.cpp Q8_0')}, ${cpuRatio(`yuan int4 spin=${spin}`, 'llama.cpp Q4_0')}`,
  );
console.log(
  `ratios: bf16 / llama.cpp F16 ${ratio('yuan bf16', 'llama.cpp F16')}, int8 / Q8_0 ${ratio('yuan int8', 'llama.cpp Q8_0')}, int4 / Q4_0 ${ratio('yuan int4', 'llama.cpp Q4_0')}, bf16 / torch bf16 ${ratio('yuan bf16', 'torch bf16')}, fp32 / torch fp32 ${ratio('yuan fp32', 'torch fp32')}`,
);
