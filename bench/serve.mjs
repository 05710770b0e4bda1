// Serving throughput with continuous batching: completion tokens/s and time to first text with 1, 4 and 16 concurrent
// clients, against serving the same requests one at a time (the engine with a batch of 1), same model and requests.
// Usage: node bench/serve.mjs [--preset tiny-lfa] [--tokens 32] [--requests 2] [--clients 1,4,16] [--weights tfjs]
//        [--backend native]
//        node bench/serve.mjs --preset yuan2-2b --weights int4 --clients 1,4   # the native decoder over int4 weights
// --weights: a comma-separated list of models, one table each: `tfjs` is the training initialisation on TensorFlow.js
// (`YuanModel.init`); fp32, bf16, int8 or int4 are random weights in that format served batched by the native decoder
// (what `yuan serve --preset` runs on the native backend; otherwise a one-line `skipped`). Default: tfjs,fp32.
// --smoke: 4 new tokens, 1 request per client, 1 and 4 clients, tfjs and int4, to check that the benchmark runs (the
// test suite does this).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getPreset, resolveConfig } from '@yuan/core';
import { initInferenceModel, YuanModel } from '@yuan/model';
import { ServingEngine } from '@yuan/serve';
import { ByteTokenizer, loadSentencePiece } from '@yuan/tokenizer';
import { initBackend, weightFormatPlugins } from '@yuan/tensor';
import { attentionNamed } from './attention-plugins.mjs';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'tiny-lfa' },
    tokens: { type: 'string', default: smoke ? '4' : '32' },
    requests: { type: 'string', default: smoke ? '1' : '2' },
    backend: { type: 'string' },
    weights: { type: 'string', default: smoke ? 'tfjs,int4' : 'tfjs,fp32' },
    clients: { type: 'string', default: smoke ? '1,4' : '1,4,16' },
    smoke: { type: 'boolean', default: false },
  },
});
const backend = await initBackend(values.backend);
const config = resolveConfig(getPreset(values.preset).config);
const attention = attentionNamed(config.attention.name);
const clientCounts = values.clients.split(',').map(Number);
if (!clientCounts.every((c) => Number.isInteger(c) && c > 0)) {
  console.error('error: --clients must be positive integers, comma-separated');
  process.exit(2);
}
const kinds = values.weights.split(',');
for (const w of kinds) {
  if (w !== 'tfjs' && !weightFormatPlugins.some((f) => f.name === w)) {
    console.error(`error: --weights takes tfjs or ${weightFormatPlugins.map((f) => f.name).join(', ')}, got ${w}`);
    process.exit(2);
  }
}
// byte-level presets use the byte tokenizer; a preset with a larger vocabulary (yuan2-2b) the YUAN SentencePiece model
// from ../shared, whose ids cover it
let tokenizer = new ByteTokenizer();
if (config.model.vocabSize > tokenizer.vocabSize) {
  const spm = path.resolve(
    path.dirname(fileURLToPath(import.meta.url)),
    '..',
    '..',
    'shared',
    'fixtures',
    'yuan2-tokenizer',
    'tokenizer.model',
  );
  if (!existsSync(spm)) {
    console.log(`skipped (${values.preset} has ${config.model.vocabSize} tokens; its tokenizer ${spm} is missing)`);
    process.exit(0);
  }
  tokenizer = await loadSentencePiece(spm);
}
const tokens = Number(values.tokens);
const perClient = Number(values.requests);

/** Each client sends its requests one after another; prompts of different lengths. */
async function run(engine, clients) {
  const firsts = [];
  let generated = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let r = 0; r < perClient; r++) {
        const prompt = 'x'.repeat(8 + ((c * 7 + r * 13) % 33));
        const sent = performance.now();
        let first = -1;
        const res = await engine.generate(
          engine.prepare({ prompt, maxNewTokens: tokens, ignoreEod: true, temperature: 0 }),
          () => {
            if (first < 0) first = performance.now() - sent;
          },
        );
        firsts.push(first);
        generated += res.choices[0].completionTokens;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  firsts.sort((a, b) => a - b);
  return {
    tokensPerSecond: generated / seconds,
    // tokens per CPU-second of this process (all threads): what batching saves in work, whatever the machine's load
    tokensPerCpuSecond: generated / ((cpu.user + cpu.system) / 1e6),
    ttftMs: firsts[Math.floor(firsts.length / 2)],
  };
}

const load = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
for (const kind of kinds) {
  let model;
  if (kind === 'tfjs') model = YuanModel.init(config, attention, 0);
  else if (backend.name !== 'native') {
    console.log(`${kind}: skipped (the native decoder needs the native backend; this run uses ${backend.name})`);
    continue;
  } else
    model = await initInferenceModel(config, attention, 0, {
      format: weightFormatPlugins.find((f) => f.name === kind),
    });
  await run(new ServingEngine(model, tokenizer, { maxBatch: 1 }), 1); // warm-up
  console.log(
    `preset ${values.preset}, backend ${backend.name}, ${kind === 'tfjs' ? 'TensorFlow.js model' : `native decoder, ${kind} weights`}, ${tokens} new tokens per request, ${perClient} requests per client; load average ${load()}${backend.library?.includes('; idle ') ? `; ${backend.library.split('; ').slice(1).join('; ')}` : ''}`,
  );
  console.log(
    'clients  one-at-a-time tok/s  batched tok/s  ratio  median time to first text (one-at-a-time / batched)  tokens per CPU-second (one-at-a-time / batched, ratio)',
  );
  for (const clients of clientCounts) {
    const serial = await run(new ServingEngine(model, tokenizer, { maxBatch: 1 }), clients);
    const batched = await run(new ServingEngine(model, tokenizer, { maxBatch: 16 }), clients);
    console.log(
      `${String(clients).padStart(7)}  ${serial.tokensPerSecond.toFixed(1).padStart(19)}  ${batched.tokensPerSecond.toFixed(1).padStart(13)}  ` +
        `${(batched.tokensPerSecond / serial.tokensPerSecond).toFixed(2).padStart(4)}x  ${serial.ttftMs.toFixed(0)} ms / ${batched.ttftMs.toFixed(0)} ms  ` +
        `${serial.tokensPerCpuSecond.toFixed(1)} / ${batched.tokensPerCpuSecond.toFixed(1)}, ${(batched.tokensPerCpuSecond / serial.tokensPerCpuSecond).toFixed(2)}x`,
    );
  }
  model.dispose();
}
