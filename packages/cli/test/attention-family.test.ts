// The attention family (@yuan/attention-family, built in) through the CLI and the serving engine: `yuan convert --to
// mla` of a trained gqa run gives the same logits under `yuan forward`; each plugin serves concurrent requests batched
// with what each request gets alone.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { plugins } from '@yuan/attention-family';
import { resolveConfig, type JsonObject } from '@yuan/core';
import { YuanModel } from '@yuan/model';
import { ServingEngine, type ServeRequest, type ServeResult } from '@yuan/serve';
import { initBackend, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { ByteTokenizer } from '@yuan/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { yuan } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-attention-family-'));
const data = path.join(tmp, 'data');

beforeAll(async () => {
  await initBackend('cpu');
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from({ length: 40 }, (_, i) => `Line ${i}: grouped queries share their keys and values.`).join('\n'),
  );
  const r = await yuan('data', 'prepare', path.join(tmp, 'corpus.txt'), '--tokenizer', 'bytes', '--output', data);
  expect(r.code, r.err).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan convert --to mla', () => {
  it('a trained gqa run becomes an mla checkpoint whose yuan forward logits equal the gqa ones', async () => {
    const run = path.join(tmp, 'gqa');
    // hidden 32, 4 heads of 8 over 2 key/value heads
    const train = await yuan(
      'train',
      '--preset',
      'tiny-mha',
      '--set',
      'attention.name=gqa',
      '--set',
      'attention.options.kvHeads=2',
      '--set',
      'model.hiddenSize=32',
      '--set',
      'model.numHeads=4',
      '--set',
      'model.numLayers=2',
      '--set',
      'model.ffnSize=64',
      '--set',
      'train.seqLength=16',
      '--set',
      'train.microBatchSize=2',
      '--set',
      'train.warmupSteps=1',
      '--data',
      data,
      '--steps',
      '3',
      '--out',
      run,
    );
    expect(train.code, train.err).toBe(0);
    const mla = path.join(tmp, 'mla');
    const conv = await yuan('convert', '--model', run, '--to', 'mla', '--out', mla);
    expect(conv.code, conv.err).toBe(0);
    expect(conv.err).toMatch(/converted 2 attention layers of .* from gqa to mla /);
    const config = JSON.parse(readFileSync(path.join(mla, 'config.json'), 'utf8'));
    expect(config.yuan.attention).toEqual({
      name: 'mla',
      options: expect.objectContaining({ kvRank: 16, ropeHeads: 2, ropeDim: 8, nopeDim: 0 }),
    });
    // the latent is V's 2 heads (16) and the RoPE keys K's 2 heads (16): gqa's 2·2·8 elements per token and layer
    const ids = [[76, 105, 110, 101, 32, 55, 58, 32, 103, 114, 111, 117, 112, 101, 100]];
    writeFileSync(path.join(tmp, 'ids.json'), JSON.stringify({ input_ids: ids }));
    const forward = async (model: string): Promise<{ logits: number[]; loss: number }> => {
      const r = await yuan('forward', '--model', model, '--input', path.join(tmp, 'ids.json'));
      expect(r.code, r.err).toBe(0);
      const out = JSON.parse(r.out) as { logits: number[][][]; loss: number };
      return { logits: out.logits.flat(2), loss: out.loss };
    };
    const before = await forward(run);
    const after = await forward(mla);
    expect(after.logits).toHaveLength(before.logits.length);
    let diff = 0;
    for (const [i, v] of before.logits.entries()) diff = Math.max(diff, Math.abs(v - after.logits[i]));
    expect(diff).toBeLessThan(1e-4);
    expect(after.loss).toBeCloseTo(before.loss, 5);
  }, 120_000);
});

const tok = new ByteTokenizer();
const requests: ServeRequest[] = [
  { prompt: 'a', maxNewTokens: 9 },
  { prompt: 'hello there, general', maxNewTokens: 14, logprobs: 2 },
  { prompt: 'xyz', maxNewTokens: 6, temperature: 0.9, seed: 5, n: 3 },
  { prompt: [65, 66, 67, 68, 69, 70, 71], maxNewTokens: 11, stop: ['zz'] },
  { prompt: 'The quick brown fox', maxNewTokens: 4, echo: true, logprobs: 1 },
];
const strip = (r: ServeResult) =>
  r.choices.map((c) => ({
    text: c.text,
    finish: c.finishReason,
    n: c.completionTokens,
    lp: c.logprobs?.map((l) => l.token),
  }));

describe('serving each attention of the family: concurrent requests batched get what each gets alone', () => {
  // small blocks and windows, so that the prompts and generations cross them
  const variants: [string, JsonObject][] = [
    ['gqa', { kvHeads: 2 }],
    ['mla', { kvRank: 12, qRank: 16, nopeDim: 4, ropeDim: 4, vDim: 6 }],
    ['based', { window: 4, featureDim: 4 }],
    ['landmark', { block: 4, topK: 2 }],
  ];
  for (const [name, options] of variants) {
    it(`${name} ${JSON.stringify(options)}`, async () => {
      const config = resolveConfig({
        model: {
          vocabSize: 264,
          hiddenSize: 32,
          numLayers: 2,
          numHeads: 4,
          ffnSize: 64,
          maxPositions: 64,
          initStd: 0.5,
        },
        attention: { name, options },
      });
      const plugin = plugins.find((p) => p.name === name) as unknown as TensorAttentionPlugin<unknown>;
      const m = YuanModel.init(config, plugin, 3);
      const alone = new ServingEngine(m, tok, { maxBatch: 1 });
      const single: ServeResult[] = [];
      for (const r of requests) single.push(await alone.generate(alone.prepare(r)));
      const before = tf.memory().numTensors;
      const engine = new ServingEngine(m, tok, { maxBatch: 8 });
      let widest = 0;
      const listener = () => {
        widest = Math.max(widest, engine.batchSize);
      };
      const first = requests.slice(0, 3).map((r) => engine.generate(engine.prepare(r), listener));
      // the others arrive while the first ones are decoding
      await new Promise((r) => setTimeout(r, 5));
      const later = requests.slice(3).map((r) => engine.generate(engine.prepare(r), listener));
      const batched = await Promise.all([...first, ...later]);
      expect(widest).toBeGreaterThan(1);
      expect(batched.map(strip)).toEqual(single.map(strip));
      batched.forEach((b, i) =>
        b.choices.forEach((c, j) =>
          c.logprobs?.forEach((l, k) => {
            const want = single[i].choices[j].logprobs![k];
            if (l.logprob === null) expect(want.logprob).toBeNull();
            else expect(Math.abs(l.logprob - want.logprob!)).toBeLessThan(1e-4);
          }),
        ),
      );
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    }, 60_000);
  }
});
