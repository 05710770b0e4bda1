// Train-step speed of yuan on each TensorFlow.js backend against PyTorch, measured in the same run.
// One step = forward + backward + Adam of an LFA or MHA preset (default tiny-lfa; yuan-25m is the ~25M-parameter shape
// of issue 22's "≤ 1.0× PyTorch at sequence 512") on batch × seq random tokens, exactly as bench/train_step_torch.py
// does it in PyTorch (OPENBLAS_NUM_THREADS=--blas-threads for Debian's OpenBLAS build; --torch-threads, default
// all cores as yuan's native backend uses them, is torch.set_num_threads, which is what a pip (MKL) build uses; until
// this default the bench ran torch on 1 thread against yuan's 2). Rounds are interleaved (torch, native,
// wasm, ...) so that load from other work on the machine slows every engine alike; the median step time of each is
// reported with its ratio to torch. Also prints matMul GFLOP/s of the native backend and of torch against the
// machine's nominal peak.
// On the native backend the model's RMSNorm and SwiGLU run as fused kernels, and attention as the fused kernel. The
// torch twin's attention is its op-by-op softmax(QKᵀ)V (`--torch-attention math`, default) or PyTorch's fused
// scaled_dot_product_attention (`--torch-attention sdpa`). Engine "native-fused" also replaces tf.train.adam's 12 ops
// per parameter with the trainer's adamwStep (one fused kernel on native; weight decay 0 and the same betas and eps as
// tf.train.adam).
// Usage: node bench/train-step.mjs [--backends native,native-fused,wasm,cpu] [--rounds 5] [--steps 2] [--preset tiny-lfa]
//        [--batch 8] [--seq 128] [--torch-attention math|sdpa] [--torch-threads CORES] [--peak-gflops N] [--python /usr/bin/python3 (or TORCH_PYTHON)]
// e.g. the 25M target: node bench/train-step.mjs --preset yuan-25m --seq 512 --batch 2 --backends native --rounds 3 --steps 1
// cpu takes over 17 s a step: it runs one round unless --cpu-rounds says otherwise.
// --leak-steps N then runs N more steps on the first backend, printing tensor count, tensor bytes and RSS.
// Without torch in --python, the torch column says "skipped" and the yuan engines still run; a backend of the default
// list that does not load (native without its addon) is skipped with a line, a backend named in --backends is an error.
// --smoke: native and wasm (not cpu), 1 round of 1 step of batch 1 x 16 tokens and one 256x128x256 matMul shape,
// repeated twice, to check that the benchmark runs (the test suite does this).
import { spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getPreset, resolveConfig } from '@yuan/core';
import { crossEntropy, YuanModel } from '@yuan/model';
import { adamwStep, initBackend, tf } from '@yuan/tensor';
import { attentionNamed } from './attention-plugins.mjs';

const smoke = process.argv.includes('--smoke');
const DEFAULT_BACKENDS = smoke ? 'native,wasm' : 'native,wasm,cpu';
const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    backends: { type: 'string' },
    preset: { type: 'string', default: 'tiny-lfa' },
    rounds: { type: 'string', default: smoke ? '1' : '5' },
    steps: { type: 'string', default: smoke ? '1' : '2' },
    'cpu-rounds': { type: 'string', default: '1' },
    batch: { type: 'string', default: smoke ? '1' : '8' },
    seq: { type: 'string', default: smoke ? '16' : '128' },
    python: { type: 'string', default: process.env.TORCH_PYTHON ?? '/usr/bin/python3' },
    'blas-threads': { type: 'string', default: '2' },
    'peak-gflops': { type: 'string' },
    'leak-steps': { type: 'string', default: '0' },
    'torch-attention': { type: 'string', default: 'math' },
    'torch-threads': { type: 'string', default: String(cpus().length) },
  },
});
const batch = Number(values.batch);
const seq = Number(values.seq);
const rounds = Number(values.rounds);
const steps = Number(values.steps);
const config = resolveConfig(getPreset(values.preset).config, {});
if (config.attention.name !== 'lfa' && config.attention.name !== 'mha')
  throw new Error(
    `bench/train-step: preset ${values.preset} uses ${config.attention.name}; only lfa and mha presets have a torch twin`,
  );
const m = config.model;
if (config.attention.name === 'lfa' && Object.keys(config.attention.options ?? {}).length)
  throw new Error(
    `bench/train-step: preset ${values.preset} sets LFA options ${JSON.stringify(config.attention.options)}; the torch twin has YUAN 2.0's defaults only`,
  );
if (seq > m.maxPositions)
  throw new Error(`bench/train-step: --seq ${seq} exceeds preset ${values.preset}'s maxPositions ${m.maxPositions}`);
if (!['math', 'sdpa'].includes(values['torch-attention']))
  throw new Error(`bench/train-step: --torch-attention ${values['torch-attention']}: expected math or sdpa`);
// matMul shapes [M, K, N] timed on native and in torch, and the repeats of each
const MATMUL = smoke
  ? [[256, 128, 256]]
  : [
      [1024, 128, 512],
      [512, 512, 512],
      [1024, 1024, 1024],
    ];
const MATMUL_REPS = smoke ? 2 : 20;

// Deterministic tokens (the speed does not depend on them).
let seed = 12345;
// The high bits of the LCG: its low 8 bits repeat every 256 draws, which would make targets equal ids.
const token = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 24;
const idsData = Int32Array.from({ length: batch * seq }, token);
const targetData = Int32Array.from({ length: batch * seq }, token);

/** The torch twin, or a one-line reason why it cannot run (no torch in `--python`). */
function torchProcess() {
  const probe = spawnSync(values.python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split('\n').pop();
    return {
      skipped: `${values.python} cannot import torch (${why}); give --python with torch, e.g. Debian's python3-torch`,
    };
  }
  const script = fileURLToPath(new URL('./train_step_torch.py', import.meta.url));
  const matmul = MATMUL.map((s) => s.join('x')).join(',');
  const args = [
    script,
    '--vocab',
    m.vocabSize,
    '--hidden',
    m.hiddenSize,
    '--layers',
    m.numLayers,
    '--heads',
    m.numHeads,
    '--ffn',
    m.ffnSize,
    '--batch',
    batch,
    '--seq',
    seq,
    '--matmul',
    matmul,
    '--matmul-reps',
    MATMUL_REPS,
    '--attention',
    values['torch-attention'],
    '--threads',
    values['torch-threads'],
  ].map(String);
  if (config.attention.name !== 'lfa') throw new Error('bench/train-step: the torch twin implements LFA only');
  const child = spawn(values.python, args, {
    env: { ...process.env, OPENBLAS_NUM_THREADS: values['blas-threads'] },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done)
      throw new Error(
        `bench/train-step: ${values.python} ${script} exited (is python3-torch installed? apt-get install -y python3-torch libopenblas0-pthread)`,
      );
    return JSON.parse(value);
  };
  return {
    hello: next(),
    async run(n) {
      child.stdin.write(`steps ${n}\n`);
      return next();
    },
    close: () => child.stdin.end(),
  };
}

// The trainer's optimizer step (@yuan/tensor adamwStep: one fused kernel on the native backend).
async function fusedAdam(model) {
  // tf.variableGrads keys gradients by the variables' own (generated) names.
  const params = new Map([...model.params.values()].map((p) => [p.name, p]));
  const moments = new Map(
    [...params].map(([n, p]) => [
      n,
      { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false) },
    ]),
  );
  let step = 0;
  return (grads) => {
    step += 1;
    for (const [name, g] of Object.entries(grads)) {
      const p = params.get(name);
      const s = moments.get(name);
      const [p2, m2, v2] = adamwStep(p, g, s.m, s.v, {
        lr: 3e-4,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-7,
        weightDecay: 0,
        step,
      });
      p.assign(p2);
      s.m.assign(m2);
      s.v.assign(v2);
      tf.dispose([p2, m2, v2]);
    }
  };
}

async function yuanEngine(name) {
  const backend = name === 'native-fused' ? 'native' : name;
  const report = await initBackend(backend);
  const model = YuanModel.init(config, attentionNamed(config.attention.name), 0);
  const opt = tf.train.adam(3e-4);
  const apply = name === 'native-fused' ? await fusedAdam(model) : (grads) => opt.applyGradients(grads);
  const ids = tf.tensor2d(idsData, [batch, seq], 'int32');
  const targets = tf.tensor2d(targetData, [batch, seq], 'int32');
  const step = () => {
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(ids).logits, targets));
    apply(grads);
    const loss = value.dataSync()[0];
    tf.dispose([value, grads]);
    return loss;
  };
  return {
    name,
    params: model.parameterCount,
    threads: report.threads,
    async run(n) {
      await initBackend(backend);
      const seconds = [];
      const cpu = [];
      const losses = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        losses.push(step());
        seconds.push((performance.now() - t0) / 1000);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1e6);
      }
      return { seconds, cpu, losses };
    },
  };
}

async function nativeMatMul() {
  await initBackend('native');
  const out = {};
  for (const [mm, k, n] of MATMUL) {
    const a = tf.randomNormal([mm, k]);
    const b = tf.randomNormal([k, n]);
    tf.matMul(a, b).dispose();
    const reps = MATMUL_REPS;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) tf.matMul(a, b).dispose();
    out[`${mm}x${k}x${n}`] = (2 * mm * k * n * reps) / ((performance.now() - t0) / 1000) / 1e9;
    tf.dispose([a, b]);
  }
  return out;
}

const torch = torchProcess();
const hello = torch.skipped ? undefined : await torch.hello;
const engines = [];
for (const name of (values.backends ?? DEFAULT_BACKENDS).split(',').filter(Boolean)) {
  let e;
  try {
    e = await yuanEngine(name);
  } catch (err) {
    if (values.backends) throw err;
    console.log(`${name}: skipped (${err.message})`);
    continue;
  }
  const warm = await e.run(1); // kernels, optimizer slots
  e.times = [];
  e.cpu = [];
  e.losses = warm.losses;
  engines.push(e);
}
const torchRun = { name: 'torch', times: [], cpu: [], losses: [] };
for (let r = 0; r < rounds; r++) {
  if (hello) {
    const t = await torch.run(steps);
    torchRun.times.push(...t.seconds);
    torchRun.cpu.push(...t.cpu);
    if (r === 0) torchRun.losses = t.losses;
  }
  for (const e of engines) {
    if (e.name === 'cpu' && r >= Number(values['cpu-rounds'])) continue;
    const y = await e.run(e.name === 'cpu' ? 1 : steps);
    e.times.push(...y.seconds);
    e.cpu.push(...y.cpu);
  }
}
if (hello) torch.close();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = hello ? median(torchRun.times) : undefined;
// CPU seconds of a step: the whole process's user + system time over all its threads (BLAS and OpenMP workers included).
const baseCpu = hello ? median(torchRun.cpu) : undefined;
console.log(
  `${values.preset}: batch ${batch} x ${seq} tokens, forward + backward + Adam; ${rounds} interleaved rounds of ${steps} steps after 1 warm-up; median`,
);
if (hello)
  console.log(
    `yuan ${engines[0]?.params.toLocaleString('en-US')} params, torch ${hello.params.toLocaleString('en-US')} params (torch ${hello.torch}, OPENBLAS_NUM_THREADS=${values['blas-threads']}, ${values['torch-threads']} torch thread(s), attention ${values['torch-attention']})`,
  );
else console.log(`torch: skipped (${torch.skipped})`);
console.log(
  `${'engine'.padEnd(12)} ${'threads'.padStart(7)} ${'ms/step'.padStart(9)} ${'vs torch'.padStart(9)} ${'CPU ms'.padStart(8)} ${'vs torch'.padStart(9)}  first loss (random init and tokens, about ln vocab)`,
);
if (hello)
  console.log(
    `${'torch'.padEnd(12)} ${values['torch-threads'].padStart(7)} ${(base * 1000).toFixed(1).padStart(9)} ${'1.00x'.padStart(9)} ${(baseCpu * 1000).toFixed(1).padStart(8)} ${'1.00x'.padStart(9)}  ${torchRun.losses[0].toFixed(4)}`,
  );
for (const e of engines) {
  const s = median(e.times);
  const c = median(e.cpu);
  console.log(
    `${e.name.padEnd(12)} ${String(e.threads).padStart(7)} ${(s * 1000).toFixed(1).padStart(9)} ${(base ? `${(s / base).toFixed(2)}x` : 'skipped').padStart(9)} ${(c * 1000).toFixed(1).padStart(8)} ${(base ? `${(c / baseCpu).toFixed(2)}x` : 'skipped').padStart(9)}  ${e.losses[0].toFixed(4)}`,
  );
}
if (engines.some((e) => e.name.startsWith('native'))) {
  const ghz = Number(cpus()[0]?.model.match(/@\s*([\d.]+)GHz/)?.[1] ?? 0);
  // Nominal peak: cores x GHz x 2 AVX-512 FMA units x 16 float lanes x 2 flops (override with --peak-gflops).
  const peak = Number(values['peak-gflops']) || cpus().length * ghz * 2 * 16 * 2;
  const mm = await nativeMatMul();
  console.log(
    `matMul GFLOP/s (${peak ? `peak ${peak.toFixed(0)} = ${values['peak-gflops'] ? '--peak-gflops' : `${cpus().length} cores x ${ghz} GHz x 64 flop/cycle AVX-512`}` : 'peak unknown: the CPU model names no GHz, give --peak-gflops'}):`,
  );
  for (const key of Object.keys(mm)) {
    console.log(
      `  ${key.padEnd(15)} native ${mm[key].toFixed(1).padStart(6)} (${peak ? `${((100 * mm[key]) / peak).toFixed(0)}%` : '?%'} of peak)   torch ${hello ? hello.matmul[key].toFixed(1).padStart(6) : 'skipped'}`,
    );
  }
}
const leakSteps = Number(values['leak-steps']);
if (leakSteps > 0 && engines.length > 0) {
  const e = engines[0];
  const mem = (step) => {
    const m = tf.memory();
    console.log(
      `  step ${String(step).padStart(5)}: ${m.numTensors} tensors, ${(m.numBytes / 2 ** 20).toFixed(1)} MiB in tensors, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    );
  };
  console.log(`${e.name}: memory over ${leakSteps} more steps`);
  mem(0);
  for (let done = 0; done < leakSteps;) {
    const n = Math.min(leakSteps - done, done < 20 ? 20 : 100);
    await e.run(n);
    done += n;
    mem(done);
  }
}
