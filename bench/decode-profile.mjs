// Where one generated token's time goes in the native decoder (yuan2-2b shape, random weights): every native call of
// a decode step timed from JavaScript (wall and CPU, per kernel and shape, in the decoder's real order and thread
// count), the JavaScript between the calls (the step's time less its native calls), the same native calls replayed
// back to back without the decoder around them, each product alone on one and on all decode threads, the fork/join of
// a tiny parallel call on the decode threads (tensor-native csrc/pool.h), and the bytes read per token against a read
// of memory on the same threads.
//
//   node bench/decode-profile.mjs [--format int4 --tokens 8 --prompt 8 --layers 24]
//   node bench/decode-profile.mjs --smoke     # a tiny shape (the bench smoke test)
//   node bench/decode-profile.mjs --preset tiny-lfa --format fp32 --rows 16 --ab-rounds 6   # a preset's shape, 16 sequences
//
// --rows N: the step decodes one token for each of N sequences (a serving step; default 1). --ab-rounds R (default 3;
// 0 skips it): last, steps of two variants over the same weights in this process, alternated R times, CPU and wall ms
// per step of each: `--ab spin` (default) idle decode workers that sleep at once against workers that spin (tensor-native
// `setDecodeSpin`, default 1000 µs or YUAN_DECODE_SPIN_US); `--ab fused` a decoder that makes one native call per shared
// input (q/k and up/gate pairs, attendRows) against one that makes the separate calls (YUAN_DECODE_UNFUSED;
// bench/README.md, "One call per shared input"); `--ab addon --addon FILE.node` another build of the addon (say the
// previous commit's, built in a scratch folder) against this one, a decoder each over the same weights: how builds
// are compared on a machine whose separate processes differ by more than the change (bench/README.md, "Stop 31").
//
// Threads: YUAN_NATIVE_THREADS, else the number of cores (as bench/decode.mjs). YUAN_DECODE_UNFUSED=1: the decoder
// makes the separate calls that its pair products and batched attention replace (an A/B of one native call per shared
// input; bench/README.md, "One call per shared input").
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    format: { type: 'string', default: 'int4' },
    tokens: { type: 'string' },
    prompt: { type: 'string', default: '8' },
    layers: { type: 'string' },
    preset: { type: 'string' },
    rows: { type: 'string', default: '1' },
    'ab-rounds': { type: 'string', default: '3' },
    ab: { type: 'string', default: 'spin' },
    addon: { type: 'string' },
  },
});
const smoke = Boolean(opt.smoke);
if (!['spin', 'fused', 'addon'].includes(opt.ab) || (opt.ab === 'addon') !== (opt.addon !== undefined)) {
  console.error(`error: --ab takes spin, fused or addon (with --addon FILE.node), got ${opt.ab}`);
  process.exit(2);
}
if (opt.addon !== undefined && !existsSync(opt.addon)) {
  console.error(`error: --addon ${opt.addon}: no such file (a built yuan_native.node)`);
  process.exit(2);
}
const threads = Number(process.env.YUAN_NATIVE_THREADS) || cpus().length;
const tokens = Number(opt.tokens ?? (smoke ? 2 : 8));
const shape = smoke
  ? { vocab: 512, hidden: 128, layers: 2, heads: 4, ffn: 512 }
  : { vocab: 135040, hidden: 2048, layers: Number(opt.layers ?? 24), heads: 32, ffn: 8192 };

const { resolveConfig, getPreset } = await import('@yuan/core');
const { lfaAttention } = await import('@yuan/attention-lfa');
const { initInferenceModel, weightBytes } = await import('@yuan/model');
const { initBackend, weightFormatPlugins, loadDecodeKernels } = await import('@yuan/tensor');
const { kernels, reason } = await loadDecodeKernels();
if (!kernels) {
  console.log(`skipped (the native addon is not built: ${reason})`);
  process.exit(0);
}
await initBackend('native');
kernels.setDecodeThreads(threads);
const format = weightFormatPlugins.find((f) => f.name === opt.format);
if (!format) {
  console.error(`error: unknown format ${opt.format}`);
  process.exit(2);
}
const config = opt.preset
  ? resolveConfig(getPreset(opt.preset).config)
  : resolveConfig(getPreset('yuan2-2b').config, {
      model: {
        vocabSize: shape.vocab,
        hiddenSize: shape.hidden,
        numLayers: shape.layers,
        numHeads: shape.heads,
        ffnSize: shape.ffn,
      },
    });
if (opt.preset) {
  const m = config.model;
  Object.assign(shape, {
    vocab: m.vocabSize,
    hidden: m.hiddenSize,
    layers: m.numLayers,
    heads: m.numHeads,
    ffn: m.ffnSize,
  });
}
const rowsPerStep = Number(opt.rows);
const model = await initInferenceModel(config, lfaAttention, 0, { format });
const dec = model.decoder;
const ops = dec.ops; // the decoder's DecodeOps (private in TypeScript): its kernels are swapped for timed ones below
const plain = ops.kernels;
const cpuNow = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

// ---- timed kernels: per (kernel, shape) calls, wall ms, CPU ms; and the calls of one step recorded for the replay
const stats = new Map();
let record;
// pairs (two products of one input, one call): both outputs, as outA+outB x in
const keyOf = (name, a) =>
  name === 'linearGptq'
    ? `${name} int${a[6]} ${a[9]}x${a[8]}`
    : name === 'linearGptqPair'
      ? `${name} int${a[6]} ${a[9]}+${a[18]}x${a[8]}`
      : name === 'linearBf16' || name === 'linearF32'
        ? `${name} ${a[3]}x${a[4]}`
        : name === 'linearBf16Pair' || name === 'linearF32Pair'
          ? `${name} ${a[3]}+${a[5]}x${a[6]}`
          : name;
// bytes of weight data a product call reads
const weightBytesOf = (name, a) =>
  name === 'linearGptq'
    ? a[2].byteLength + a[3].byteLength + a[4].byteLength
    : name === 'linearGptqPair'
      ? [2, 3, 4, 11, 12, 13].reduce((t, i) => t + a[i].byteLength, 0)
      : name.endsWith('Pair')
        ? a[2].byteLength + a[4].byteLength
        : (a[2]?.byteLength ?? 0);
const timed = {};
for (const name of Object.getOwnPropertyNames(plain)) {
  const f = plain[name];
  if (typeof f !== 'function') continue;
  timed[name] = (...a) => {
    if (record) record.push([name, [...a]]);
    const c0 = cpuNow();
    const t0 = performance.now();
    const r = f(...a);
    const dt = performance.now() - t0;
    const dc = cpuNow() - c0;
    const key = keyOf(name, a);
    const s = stats.get(key) ?? { calls: 0, wall: 0, cpu: 0 };
    s.calls++;
    s.wall += dt;
    s.cpu += dc;
    stats.set(key, s);
    return r;
  };
}

const argmax = (row) => {
  let b = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[b]) b = i;
  return b;
};
// `rowsPerStep` sequences, each given the prompt (shifted by its index), then a step decodes one token of each
const stepper = (decoder) => {
  const seqs = Array.from({ length: rowsPerStep }, () => decoder.newSequence());
  const prompt = (i) => Array.from({ length: Number(opt.prompt) }, (_, j) => (i + j + 1) % shape.vocab);
  let out = decoder.forward(seqs.map((sequence, i) => ({ sequence, tokens: prompt(i) })));
  return () => {
    const next = seqs.map((_, i) => argmax(out.subarray(i * shape.vocab, (i + 1) * shape.vocab)));
    out = decoder.forward(seqs.map((sequence, i) => ({ sequence, tokens: [next[i]] })));
  };
};
const step = stepper(dec);

// 1. plain steps (no timers): wall and CPU per token
step();
let t0 = performance.now();
let c0 = cpuNow();
for (let i = 0; i < tokens; i++) step();
const plainWall = (performance.now() - t0) / tokens;
const plainCpu = (cpuNow() - c0) / tokens;

// 2. timed steps: every native call
ops.kernels = timed;
record = [];
step();
const calls = record;
record = undefined;
stats.clear();
t0 = performance.now();
c0 = cpuNow();
for (let i = 0; i < tokens; i++) step();
const timedWall = (performance.now() - t0) / tokens;
const timedCpu = (cpuNow() - c0) / tokens;
ops.kernels = plain;

// 3. the recorded step's native calls replayed back to back (the same arrays, the same order, no JavaScript between)
const replay = () => {
  for (const [name, a] of calls) plain[name](...a);
};
replay();
t0 = performance.now();
c0 = cpuNow();
for (let i = 0; i < tokens; i++) replay();
const replayWall = (performance.now() - t0) / tokens;
const replayCpu = (cpuNow() - c0) / tokens;

// 3b. the step with the products skipped (linear* return at once): the JavaScript, the small kernels and V8's
// collections alone, free of the memory traffic that makes the products' CPU time vary on a shared machine
const skip = Object.fromEntries(
  Object.getOwnPropertyNames(plain)
    .filter((n) => typeof plain[n] === 'function')
    .map((n) => [n, n.startsWith('linear') ? () => {} : plain[n]]),
);
ops.kernels = skip;
for (let i = 0; i < 4; i++) step();
const skipTokens = 8 * tokens;
t0 = performance.now();
c0 = cpuNow();
for (let i = 0; i < skipTokens; i++) step();
const skipWall = (performance.now() - t0) / skipTokens;
const skipCpu = (cpuNow() - c0) / skipTokens;
ops.kernels = plain;

// 4. fork/join: an empty-sized parallel call (readAll of 4096 floats) on all threads and on one
const tiny = new Float32Array(4096).fill(1);
const forkJoin = (th) => {
  kernels.setDecodeThreads(th);
  for (let i = 0; i < 100; i++) kernels.readAll(tiny);
  const n = 2000;
  const s = performance.now();
  for (let i = 0; i < n; i++) kernels.readAll(tiny);
  return ((performance.now() - s) / n) * 1000;
};
const fj1 = forkJoin(1);
const fjN = forkJoin(threads);

// 5. memory read on the decode threads (1 GiB, best of 3) → the bandwidth limit per token
const big = new Float32Array((smoke ? 16 : 256) * 2 ** 20).fill(1);
let best = Infinity;
for (let i = 0; i < 3; i++) {
  const s = performance.now();
  kernels.readAll(big);
  best = Math.min(best, performance.now() - s);
}
const bw = big.byteLength / (best / 1000) / 1e9;
const bytes = weightBytes(dec.weights);

console.log(
  `${opt.format}, ${shape.layers} layers (hidden ${shape.hidden}, ffn ${shape.ffn}, vocab ${shape.vocab}), ${threads} threads, ${tokens} tokens${rowsPerStep > 1 ? ` of ${rowsPerStep} sequences per step (per token: per step)` : ''}; load average ${loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}`,
);
console.log(
  `bytes per token ${(bytes / 1e9).toFixed(3)} GB; read ${bw.toFixed(1)} GB/s → limit ${((bytes / bw / 1e9) * 1000).toFixed(1)} ms/token (${((bw * 1e9) / bytes).toFixed(2)} tokens/s)`,
);
console.log(
  `per token: plain ${plainWall.toFixed(1)} ms (${plainCpu.toFixed(1)} CPU ms); timed ${timedWall.toFixed(1)} ms (${timedCpu.toFixed(1)} CPU ms); native calls replayed ${replayWall.toFixed(1)} ms (${replayCpu.toFixed(1)} CPU ms)`,
);
console.log(
  `per token with the products skipped: ${skipWall.toFixed(2)} ms (${skipCpu.toFixed(2)} CPU ms): JavaScript, small kernels, collections`,
);
console.log(`fork/join (readAll of 16 KB): ${fj1.toFixed(1)} µs on 1 thread, ${fjN.toFixed(1)} µs on ${threads}`);
const rows = [...stats].sort((a, b) => b[1].wall - a[1].wall);
let nativeWall = 0;
let nativeCpu = 0;
console.log('kernel (shape out×in)           calls/token  ms/token  CPU ms/token  µs/call  share of step');
for (const [key, s] of rows) {
  nativeWall += s.wall;
  nativeCpu += s.cpu;
  console.log(
    `${key.padEnd(32)} ${(s.calls / tokens).toFixed(0).padStart(11)}  ${(s.wall / tokens).toFixed(2).padStart(8)}  ${(s.cpu / tokens).toFixed(2).padStart(12)}  ${((s.wall / s.calls) * 1000).toFixed(0).padStart(7)}  ${((100 * s.wall) / tokens / timedWall).toFixed(1).padStart(12)}%`,
  );
}
console.log(
  `native calls ${(nativeWall / tokens).toFixed(1)} ms/token (${(nativeCpu / tokens).toFixed(1)} CPU ms); JavaScript between them ${(timedWall - nativeWall / tokens).toFixed(1)} ms/token (${((100 * (timedWall - nativeWall / tokens)) / timedWall).toFixed(1)}%)`,
);

// 6. each product shape alone, as GB of weights per second on all threads and on one (the weights of the first
// layer, called back to back; they fit no cache at the 2B shape except the small ones)
const seen = new Set();
console.log('product alone, back to back (first weight per shape)GB/s on 1 thread   GB/s on all');
for (const [name, a] of calls) {
  if (!name.startsWith('linear')) continue;
  const key = keyOf(name, a);
  if (seen.has(key)) continue;
  seen.add(key);
  const wBytes = weightBytesOf(name, a);
  const rate = (th) => {
    kernels.setDecodeThreads(th);
    plain[name](...a);
    let b = Infinity;
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      plain[name](...a);
      b = Math.min(b, performance.now() - s);
    }
    return wBytes / (b / 1000) / 1e9;
  };
  console.log(`${key.padEnd(44)} ${rate(1).toFixed(1).padStart(16)}   ${rate(threads).toFixed(1).padStart(11)}`);
}
kernels.setDecodeThreads(threads);

// 7. A/B, two variants over the same weights in this process, `tokens` steps each, alternated. `--ab spin` (default):
// idle decode workers that sleep at once (setDecodeSpin(0)) against workers that spin (the default, or
// YUAN_DECODE_SPIN_US), one decoder. `--ab fused`: one native call per shared input against the separate calls, two
// decoders (the separate one built with YUAN_DECODE_UNFUSED=1). `--ab addon`: a decoder on the --addon build's kernels
// against one on this build's.
const abRounds = Number(opt['ab-rounds']);
if (abRounds > 0) {
  const { Decoder } = await import('@yuan/model');
  const build = (unfused) => {
    const before = process.env.YUAN_DECODE_UNFUSED;
    if (unfused) process.env.YUAN_DECODE_UNFUSED = '1';
    else delete process.env.YUAN_DECODE_UNFUSED;
    try {
      return new Decoder(config, lfaAttention, dec.weights, kernels);
    } finally {
      if (before === undefined) delete process.env.YUAN_DECODE_UNFUSED;
      else process.env.YUAN_DECODE_UNFUSED = before;
    }
  };
  const spin = kernels.setDecodeSpin(-1);
  // another build of the addon (e.g. the previous commit's, built with node-gyp in a scratch folder), loaded beside
  // this one: its own kernels and threads over the same weights
  const other = () => {
    const k = createRequire(import.meta.url)(path.resolve(opt.addon));
    k.setDecodeThreads(threads);
    return new Decoder(config, lfaAttention, dec.weights, k);
  };
  const one = stepper(build(false));
  const variants =
    opt.ab === 'fused'
      ? [
          ['separate calls', stepper(build(true)), () => {}],
          ['one call per shared input', one, () => {}],
        ]
      : opt.ab === 'addon'
        ? [
            ['the --addon build', stepper(other()), () => {}],
            ['this build', one, () => {}],
          ]
        : [
            ['workers sleep (spin 0 µs)', one, () => kernels.setDecodeSpin(0)],
            [`workers spin ${spin} µs`, one, () => kernels.setDecodeSpin(spin)],
          ];
  const got = variants.map(() => ({ cpu: [], wall: [] }));
  for (const [, run, set] of variants) {
    set();
    run();
  }
  // ABBA: the order flips every round, so that neither variant always runs after the other
  for (let r = 0; r < abRounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    order.forEach((v) => {
      const [, run, set] = variants[v];
      set();
      const w0 = performance.now();
      const u0 = cpuNow();
      for (let i = 0; i < tokens; i++) run();
      got[v].cpu.push((cpuNow() - u0) / tokens);
      got[v].wall.push((performance.now() - w0) / tokens);
    });
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(
    `A/B per step (${rowsPerStep} row${rowsPerStep > 1 ? 's' : ''}, ${abRounds} rounds of ${tokens} steps alternated, ABBA; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}): CPU ms median (rounds) | wall ms median`,
  );
  variants.forEach(([name], v) =>
    console.log(
      `  ${name.padEnd(26)} ${median(got[v].cpu).toFixed(2)} (${got[v].cpu.map((x) => x.toFixed(2)).join(', ')}) | ${median(got[v].wall).toFixed(2)}`,
    ),
  );
  console.log(
    `A/B ratio ${{ fused: 'separate / one call', spin: 'sleep / spin', addon: '--addon / this build' }[opt.ab]}: CPU ${(median(got[0].cpu) / median(got[1].cpu)).toFixed(3)}, wall ${(median(got[0].wall) / median(got[1].wall)).toFixed(3)}`,
  );
  kernels.setDecodeSpin(spin);
}
