// Training speed of the attention variants: tokens/s of a full train step (forward, backward, clip, AdamW) for
// tiny-lfa and tiny-lpa against tiny-mha, measured in the same run. Steps are interleaved round by round
// (mha, lfa, lpa, mha, ...) so a machine shared with other work slows every variant alike; medians are reported.
// Usage: node bench/train-attention.mjs [--presets tiny-mha,tiny-lfa,tiny-lpa] [--rounds 8] [--batch 8] [--seq 128] [--backend wasm]
// --smoke: 1 round of batch 1 × 16 tokens on 20 documents, to check that the benchmark runs (the test suite does this).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getPreset, resolveConfig, Rng } from '@yuan/core';
import { YuanModel } from '@yuan/model';
import { trainConfig, Trainer } from '@yuan/train';
import { BatchLoader, PackedSplit, PackWriter, readPackedIndex } from '@yuan/data';
import { initBackend } from '@yuan/tensor';
import { attentionNamed } from './attention-plugins.mjs';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'tiny-mha,tiny-lfa,tiny-lpa' },
    rounds: { type: 'string', default: smoke ? '1' : '8' },
    batch: { type: 'string', default: smoke ? '1' : '8' },
    seq: { type: 'string', default: smoke ? '16' : '128' },
    backend: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const backend = await initBackend(values.backend);
const rounds = Number(values.rounds);

// synthetic byte documents (the speed does not depend on the text)
const dir = path.join(mkdtempSync(path.join(tmpdir(), 'yuan-bench-')), 'data');
const rng = new Rng(1);
const writer = await PackWriter.create(dir, {
  tokenizer: { name: 'bytes' },
  vocabSize: 264,
  special: { eod: 256, sep: 257, pad: 258 },
  validFraction: 0,
});
for (let d = 0; d < (smoke ? 20 : 200); d++)
  await writer.addDocument(Array.from({ length: 200 + rng.int(800) }, () => 32 + rng.int(90)));
await writer.finish();
const index = readPackedIndex(dir);

const runs = values.presets.split(',').map((name) => {
  const config = resolveConfig(getPreset(name).config, {
    train: { seqLength: Number(values.seq), microBatchSize: Number(values.batch), warmupSteps: 1 },
  });
  const tc = trainConfig(config);
  const model = YuanModel.init(config, attentionNamed(config.attention.name), 0);
  const split = PackedSplit.open(dir, index, 'train');
  return {
    name,
    model,
    split,
    trainer: new Trainer(model, tc, rounds + 1, new BatchLoader(split, tc.seqLength, tc.microBatchSize, 0, 256)),
    times: [],
    tokens: 0,
  };
});

for (const r of runs) await r.trainer.trainStep(); // warm-up: kernels, optimizer state
for (let i = 0; i < rounds; i++) {
  for (const r of runs) {
    const m = await r.trainer.trainStep();
    r.times.push(m.seconds);
    r.tokens = m.tokens;
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = runs[0];
console.log(
  `backend ${backend.name}, batch ${values.batch} x ${values.seq} tokens, ${rounds} interleaved steps each after 1 warm-up, median step time`,
);
console.log(
  `${'preset'.padEnd(10)} ${'params'.padStart(10)} ${'ms/step'.padStart(9)} ${'tokens/s'.padStart(9)}  vs ${base.name}`,
);
for (const r of runs) {
  const s = median(r.times);
  const ratio = s / median(base.times);
  const rel =
    r === base
      ? 'baseline'
      : `time/step ${ratio.toFixed(3)}x (${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%), params ${(r.model.parameterCount / base.model.parameterCount).toFixed(3)}x`;
  console.log(
    `${r.name.padEnd(10)} ${r.model.parameterCount.toLocaleString('en-US').padStart(10)} ${(s * 1000).toFixed(0).padStart(9)} ${(r.tokens / s).toFixed(0).padStart(9)}  ${rel}`,
  );
}
for (const r of runs) {
  r.trainer.dispose();
  r.model.dispose();
  r.split.close();
}
rmSync(path.dirname(dir), { recursive: true, force: true });
