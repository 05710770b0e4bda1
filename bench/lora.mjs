// LoRA fine-tuning of the yuan2-2b shape: step time and peak resident memory of yuan (LoRA on a frozen fp32 base,
// @yuan/model's lora adapter, AdamW over the adapter only) against PyTorch + Hugging Face peft on the same shape
// (transformers' LlamaForCausalLM with yuan2-2b's sizes, random init, fp32 base; bench/lora_torch.py), in one run.
// Each side runs in its own process, one after the other (their peak resident memory is each process's ru_maxrss), on
// the same number of threads; a step is forward + backward + AdamW on batch × seq random tokens; the first step is a
// warm-up and the median of the others is reported, in wall seconds and in CPU seconds of the process (all its
// threads; less sensitive to other jobs on a shared machine, though BLAS threads that spin count too). yuan's model has YUAN 2.0's LFA (two causal convolutions per
// layer: 2.09 B parameters against the LLaMA twin's 1.89 B at the yuan2-2b shape, about 10% more work per token). The frozen base's values are tiled from a random block (the
// speed does not depend on them; seeded per-parameter initialisation of 2B values takes minutes).
// Usage: node bench/lora.mjs [--preset yuan2-2b] [--layers N] [--seq 512] [--batch 1] [--rank 16] [--alpha 32]
//        [--dropout 0.05] [--targets q_proj,k_proj,v_proj,o_proj] [--steps 3] [--threads 2] [--backend native]
//        [--recompute full|none|selective|whole (yuan: full recomputes each layer in the backward (default); none
//        records each layer once on a kept tape that holds only what the adapter's gradients read; whole is the
//        whole model on one TensorFlow.js tape)]
//        [--weights fp32|bf16|int8|int4 (yuan's frozen base in that weight format, QLoRA-style: its linears stay packed
//        and their products run on the packed data; torch's base is bf16 for bf16, else fp32)] [--torch-checkpointing]
//        [--python PY (else TORCH_PYTHON, else .venv-clients/bin/python, else python3)]
// Memory: the 2B's fp32 base is 8.4 GB on each side, so the two never run at once. The whole model on one TensorFlow.js
// tape (--recompute whole) keeps about 0.75 GB a layer at seq 512, which does not fit 24 layers in 24 GB; --recompute
// none keeps each layer's tape pruned to what the adapter's gradients read (about 0.1 GB a layer, bench/README.md);
// yuan recomputes each layer by default (only layer inputs are kept), and torch keeps
// its activations unless --torch-checkpointing (transformers' gradient checkpointing, the same trade). Without torch, transformers or
// peft in the Python, one `torch + peft: skipped (...)` line and the yuan part still runs.
// --smoke: tiny-lfa, 32 tokens, rank 4, one step after the warm-up, to check that the benchmark runs (the test suite does this).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    worker: { type: 'boolean', default: false },
    preset: { type: 'string', default: smoke ? 'tiny-lfa' : 'yuan2-2b' },
    layers: { type: 'string' },
    seq: { type: 'string', default: smoke ? '32' : '512' },
    batch: { type: 'string', default: '1' },
    rank: { type: 'string', default: smoke ? '4' : '16' },
    alpha: { type: 'string', default: smoke ? '8' : '32' },
    dropout: { type: 'string', default: '0.05' },
    targets: { type: 'string', default: 'q_proj,k_proj,v_proj,o_proj' },
    steps: { type: 'string', default: smoke ? '1' : '3' },
    threads: { type: 'string', default: '2' },
    backend: { type: 'string' },
    python: { type: 'string' },
    recompute: { type: 'string' },
    weights: { type: 'string', default: 'fp32' },
    'torch-checkpointing': { type: 'boolean', default: false },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const seq = Number(values.seq);
const batch = Number(values.batch);
const steps = Number(values.steps);
values.recompute ??= 'full';
const GiB = 2 ** 30;

/** The yuan side, in this (fresh) process: the library's adapter engine on packed random tokens; prints one JSON line. */
async function yuanWorker() {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { lfaAttention } = await import('@yuan/attention-lfa');
  const { getPreset, resolveConfig, Rng } = await import('@yuan/core');
  const { PackWriter } = await import('@yuan/data');
  const { loraAdapter, mhaAttention, modelParameters, randomInferenceWeights } = await import('@yuan/model');
  const { initBackend, loadDecodeKernels, weightFormatPlugins } = await import('@yuan/tensor');
  const { adapterEngine, trainConfig } = await import('@yuan/train');
  const backend = await initBackend(values.backend);
  const preset = getPreset(values.preset).config;
  const config = resolveConfig(preset, {
    model: {
      ...(values.layers ? { numLayers: Number(values.layers) } : {}),
      maxPositions: Math.max(seq, preset.model?.maxPositions ?? 0),
    },
    train: {
      seqLength: seq,
      microBatchSize: batch,
      gradAccumulation: 1,
      warmupSteps: 0,
      lr: 1e-4,
      minLr: 1e-5,
      resetPositionIds: false,
      validEvery: 0,
    },
  });
  const attention = config.attention.name === 'lfa' ? lfaAttention : mhaAttention;
  const rng = new Rng(1);
  // random tokens, packed as `yuan data prepare` packs data, enough for the steps
  const dir = mkdtempSync(path.join(tmpdir(), 'yuan-bench-lora-'));
  const vocab = config.model.vocabSize;
  const w = await PackWriter.create(dir, {
    tokenizer: { name: 'bytes' },
    vocabSize: vocab,
    special: { eod: vocab - 1, sep: vocab - 2, pad: vocab - 3 },
    validFraction: 0,
  });
  for (let d = 0; d < steps + 2; d++)
    await w.addDocument(Array.from({ length: batch * (seq + 1) }, () => rng.nextUint32() % (vocab - 3)));
  await w.finish();
  // the frozen base: each weight made when the model asks for it, tiled from one random block, and let go at once
  const specs = modelParameters(config, attention);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const block = Float32Array.from({ length: 1 << 20 }, () => rng.normal());
  class Tiled extends Map {
    get(name) {
      const s = byName.get(name);
      const out = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
      if (s.init.kind === 'ones') return out.fill(1);
      const scale = s.init.kind === 'normal' ? s.init.std : s.init.kind === 'uniform' ? s.init.bound / 2 : 0;
      for (let i = 0; i < out.length; i += block.length)
        out.set(block.subarray(0, Math.min(block.length, out.length - i)), i);
      for (let i = 0; i < out.length; i++) out[i] *= scale;
      return out;
    }
  }
  const t0 = performance.now();
  const options = {
    rank: Number(values.rank),
    alpha: Number(values.alpha),
    dropout: Number(values.dropout),
    targets: values.targets.split(','),
  };
  const modes = { full: 'full', none: 'none', selective: 'selective', whole: false };
  if (!(values.recompute in modes))
    throw new Error(`--recompute ${values.recompute}: expected full, none, selective or whole`);
  const recompute = modes[values.recompute];
  const format = weightFormatPlugins.find((f) => f.name === values.weights);
  if (!format) throw new Error(`--weights ${values.weights}: expected fp32, bf16, int8 or int4`);
  await loadDecodeKernels();
  // fp32: the tiled float32 base; another format: random weights drawn in it (native, seconds for 2B)
  const base =
    values.weights === 'fp32'
      ? { base: async () => new Tiled() }
      : { storedBase: async () => randomInferenceWeights(config, attention, 0, { format }) };
  const engine = await adapterEngine({ plugin: loraAdapter, options, ...base, recompute })({
    config,
    train: trainConfig(config),
    attention,
    data: dir,
    seed: 0,
    totalSteps: steps + 1,
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const loadedRss = process.memoryUsage().rss;
  const seconds = [];
  const cpuSeconds = [];
  const losses = [];
  try {
    for (let s = 0; s <= steps; s++) {
      const c0 = process.cpuUsage();
      const m = await engine.trainStep();
      const c = process.cpuUsage(c0);
      cpuSeconds.push((c.user + c.system) / 1e6);
      seconds.push(m.seconds);
      losses.push(m.loss);
    }
  } finally {
    await engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    JSON.stringify({
      backend: backend.name,
      threads: backend.threads,
      attention: config.attention.name,
      shape: config.model,
      recompute: values.recompute,
      weights: values.weights,
      baseParameters: specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0),
      trainable: engine.parameterCount,
      loadSeconds,
      loadedRssBytes: loadedRss,
      seconds,
      cpuSeconds,
      losses,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
}

/** Runs a child and parses the JSON line it prints last; a failure is an error with its stderr's tail. */
function jsonChild(command, args, env) {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0)
    throw new Error(
      `bench/lora: ${command} ${args.slice(0, 2).join(' ')} exited ${r.status ?? r.signal}:\n${(r.stderr ?? '').trim().split('\n').slice(-12).join('\n')}`,
    );
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** The Python with torch, transformers and peft, or the one-line reason there is none. */
function findPython() {
  const candidates = [
    values.python,
    process.env.TORCH_PYTHON,
    path.join(here, '..', '.venv-clients', 'bin', 'python'),
    'python3',
  ].filter(Boolean);
  const python = candidates.find((c) => !c.includes('/') || existsSync(c));
  const probe = spawnSync(python, ['-c', 'import torch, transformers, peft'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split('\n').pop();
    return {
      skipped: `${python} cannot import torch, transformers and peft (${why}); give --python, or run .ci/run's install into .venv-clients`,
    };
  }
  return { python };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (values.worker) {
  await yuanWorker();
} else {
  const threads = values.threads;
  const env = { OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads, YUAN_NATIVE_THREADS: threads };
  const passed = process.argv.slice(2).filter((a) => a !== '--smoke');
  const yuan = jsonChild(
    process.execPath,
    [fileURLToPath(import.meta.url), ...(smoke ? ['--smoke'] : []), ...passed, '--worker'],
    env,
  );
  const m = yuan.shape;
  const measured = (xs) => (xs.length > 1 ? xs.slice(1) : xs);
  const ySec = median(measured(yuan.seconds));
  console.log(
    `${values.preset}${values.layers ? ` (${m.numLayers} layers)` : ''} shape: hidden ${m.hiddenSize}, ${m.numLayers} layers, ${m.numHeads} heads, ffn ${m.ffnSize}, vocab ${m.vocabSize}; ` +
      `LoRA rank ${values.rank}, alpha ${values.alpha}, dropout ${values.dropout} on ${values.targets}; frozen ${values.weights} base (torch ${values.weights === 'bf16' ? 'bf16' : 'fp32'}); batch ${batch} x ${seq} tokens; ` +
      `median of ${Math.max(1, steps)} step(s) after 1 warm-up; ${threads} threads; yuan --recompute ${yuan.recompute}, ` +
      `torch ${values['torch-checkpointing'] ? 'with' : 'without'} gradient checkpointing`,
  );
  const row = (name, sec, cpu, rss, base, trainable, extra = '') =>
    console.log(
      `${name.padEnd(34)} ${sec.toFixed(2).padStart(8)} s/step (${cpu.toFixed(1)} CPU s) ${(rss / GiB).toFixed(2).padStart(7)} GiB peak RSS  base ${base.toLocaleString('en-US')}, trainable ${trainable.toLocaleString('en-US')}${extra}`,
    );
  const yCpu = median(measured(yuan.cpuSeconds));
  row(
    `yuan (${yuan.backend}, ${yuan.attention}${yuan.weights === 'fp32' ? '' : `, ${yuan.weights} base`})`,
    ySec,
    yCpu,
    yuan.peakRssBytes,
    yuan.baseParameters,
    yuan.trainable,
    `; ${(yuan.loadedRssBytes / GiB).toFixed(2)} GiB after loading`,
  );
  const py = findPython();
  if (py.skipped) {
    console.log(`torch + peft: skipped (${py.skipped})`);
  } else {
    const args = [
      path.join(here, 'lora_torch.py'),
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
      '--seq',
      seq,
      '--batch',
      batch,
      '--rank',
      values.rank,
      '--alpha',
      values.alpha,
      '--dropout',
      values.dropout,
      '--targets',
      values.targets,
      '--steps',
      steps,
      '--threads',
      threads,
    ].map(String);
    if (values['torch-checkpointing']) args.push('--checkpointing');
    if (values.weights === 'bf16') args.push('--base-dtype', 'bf16');
    const torch = jsonChild(py.python, args, env);
    const tSec = median(measured(torch.seconds));
    const tCpu = median(measured(torch.cpuSeconds));
    row(
      `torch ${torch.torch.split('+')[0]} + peft ${torch.peft} (llama)`,
      tSec,
      tCpu,
      torch.peakRssBytes,
      torch.baseParameters,
      torch.trainable,
    );
    console.log(
      `ratio yuan / torch+peft: step time ${(ySec / tSec).toFixed(2)}x, peak RSS ${(yuan.peakRssBytes / torch.peakRssBytes).toFixed(2)}x, CPU time ${(yCpu / tCpu).toFixed(2)}x`,
    );
  }
}
