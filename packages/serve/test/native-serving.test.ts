import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig } from '@yuan/core';
import { generate, initInferenceModel, mhaAttention, type YuanModel } from '@yuan/model';
import { initBackend, int4Format, int8Format, loadDecodeKernels, type TensorWeightFormat } from '@yuan/tensor';
import { ByteTokenizer } from '@yuan/tokenizer';
import { beforeAll, describe, expect, it } from 'vitest';
import { ServingEngine, type ServeRequest, type ServeResult } from '../src/index.js';

// Serving on the native decoder (weights in their stored format): one batched `Decoder.forward` per step.
const native = await loadDecodeKernels();
const skip = native.kernels ? undefined : `native kernels unavailable: ${native.reason}`;
const tok = new ByteTokenizer();

const requests: ServeRequest[] = [
  { prompt: 'a', maxNewTokens: 9 },
  { prompt: 'hello there, general', maxNewTokens: 14, logprobs: 2 },
  { prompt: 'xyz', maxNewTokens: 6, temperature: 0.9, seed: 5, n: 3 },
  { prompt: [65, 66, 67, 68, 69, 70, 71], maxNewTokens: 11, stop: ['zz'] },
  { prompt: 'The quick brown fox', maxNewTokens: 4, echo: true, logprobs: 1 },
  { prompt: 'ok', maxNewTokens: 0, echo: true },
];

function strip(r: ServeResult) {
  return r.choices.map((c) => ({
    text: c.text,
    finish: c.finishReason,
    n: c.completionTokens,
    lp: c.logprobs?.map((l) => l.token),
    top: c.logprobs?.map((l) => l.top?.map(([t]) => t)),
  }));
}

async function model(attention: 'lfa' | 'mha', format?: TensorWeightFormat): Promise<YuanModel> {
  const config = resolveConfig(
    { model: { vocabSize: 264, hiddenSize: 64, numLayers: 2, numHeads: 4, ffnSize: 128, maxPositions: 64 } },
    { attention: { name: attention, options: {} } },
  );
  return initInferenceModel(config, (attention === 'lfa' ? lfaAttention : mhaAttention) as never, 7, { format });
}

describe.skipIf(skip)(`ServingEngine on the native decoder${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    await initBackend('native');
  });

  for (const [attention, format] of [
    ['lfa', undefined],
    ['lfa', int4Format],
    ['mha', int8Format],
  ] as const) {
    it(`${attention}, ${format?.name ?? 'fp32'}: batched requests (joining mid-way) get what each gets alone`, async () => {
      const m = await model(attention, format);
      expect(m.decoder).toBeDefined();
      const alone = new ServingEngine(m, tok, { maxBatch: 1 });
      expect(alone.native).toBe(true);
      const single: ServeResult[] = [];
      for (const r of requests) single.push(await alone.generate(alone.prepare(r)));
      // the engine alone agrees with the model's own generator (also the native decoder)
      expect(tok.decode(generate(m, tok.encode('a'), { maxNewTokens: 9 }))).toBe(single[0].choices[0].text);

      const engine = new ServingEngine(m, tok, { maxBatch: 8 });
      let widest = 0;
      const listener = () => {
        widest = Math.max(widest, engine.batchSize);
      };
      const first = requests.slice(0, 3).map((r) => engine.generate(engine.prepare(r), listener));
      await new Promise((r) => setTimeout(r, 5));
      const later = requests.slice(3).map((r) => engine.generate(engine.prepare(r), listener));
      const batched = await Promise.all([...first, ...later]);
      expect(widest).toBeGreaterThan(3);
      expect(batched.map(strip)).toEqual(single.map(strip));
      // below 32 rows each row's products do not depend on the other rows: the same logprobs to the bit
      batched.forEach((b, i) => b.choices.forEach((c, j) => expect(c.logprobs).toEqual(single[i].choices[j].logprobs)));
      expect(batched[4].choices[0].logprobs![0].logprob).toBeNull();
      expect(batched[4].choices[0].logprobs!).toHaveLength(4 + tok.encode('The quick brown fox').length);
      expect(batched[5].choices[0]).toMatchObject({ text: 'ok', finishReason: 'length', completionTokens: 0 });
      expect(engine.batchSize).toBe(0);
      m.dispose();
    });
  }

  it('prompts that arrive together are prefilled in one forward with the running rows (at most 31 rows); a long prompt alone, one per step', async () => {
    const m = await model('lfa', int4Format);
    const dec = m.decoder!;
    const calls: number[][] = []; // tokens per item of each Decoder.forward
    const forward = dec.forward.bind(dec);
    dec.forward = (items, all) => {
      calls.push(items.map((it) => it.tokens.length));
      return forward(items, all);
    };
    const twelve = 'abcdefghijkl';
    const together: ServeRequest[] = [
      { prompt: twelve, maxNewTokens: 6 },
      { prompt: twelve.toUpperCase(), maxNewTokens: 3, temperature: 0.8, seed: 2 },
      { prompt: 'mnopqrstuvwx', maxNewTokens: 5 }, // 36 rows with the first two: waits one step
    ];
    const midway: ServeRequest = { prompt: 'hi', maxNewTokens: 4, n: 2 };
    const long: ServeRequest = { prompt: 'z'.repeat(40), maxNewTokens: 3 };
    const long2: ServeRequest = { prompt: 'y'.repeat(36), maxNewTokens: 2 };
    const run = async (engine: ServingEngine, batched: boolean) => {
      const out: Promise<ServeResult>[] = [];
      let sent = false;
      const submit = (r: ServeRequest) => out.push(engine.generate(engine.prepare(r)));
      out.push(
        engine.generate(engine.prepare(together[0]), () => {
          // when the first step's text arrives: one short and one long request join the running batch
          if (sent || !batched) return;
          sent = true;
          submit(midway);
          submit(long);
          submit(long2);
        }),
      );
      together.slice(1).forEach(submit);
      await Promise.all(out);
      if (!batched) [midway, long, long2].forEach(submit);
      return Promise.all(out); // together[0..2], midway, long, long2
    };
    const alone = await run(new ServingEngine(m, tok, { maxBatch: 1 }), false);
    calls.length = 0;
    const batched = await run(new ServingEngine(m, tok, { maxBatch: 8 }), true);
    expect(batched.map(strip)).toEqual(alone.map(strip));
    // the first two prompts in one call; the third (12 more rows would make 36) waits one step and rides along with the
    // two running rows and the short request that arrived meanwhile (two choices)
    expect(calls[0]).toEqual([12, 12]);
    expect(calls[1]).toEqual([1, 1, 12, 2, 2]);
    // the long prompt (40 rows) cannot ride along: first in line, it is prefilled alone, then the step goes on
    expect(calls[2]).toEqual([40]);
    expect(calls[3]).toEqual(Array(calls[3].length).fill(1));
    expect(calls[3].length).toBeGreaterThan(4);
    // the second long prompt waits for the next cycle: the running rows never wait more than one call
    expect(calls[4]).toEqual([36]);
    expect(calls[5]).toEqual(Array(calls[5].length).fill(1));
    expect(calls.every((c) => c.reduce((a, b) => a + b) <= 31 || c.length === 1)).toBe(true);
    m.dispose();
  });
});
