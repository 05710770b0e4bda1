import { PluginRegistry, resolveConfig } from '@yuan/core';
import { initBackend, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { ByteTokenizer, SentencePieceTokenizer } from '@yuan/tokenizer';
// the tokenizer package's test helper (a tiny SentencePiece model built in memory)
import { makeModel } from '../../tokenizer/src/testing.js';
import { ServeInputError, ServingEngine, type ServeRequest, type ServeResult } from '../src/index.js';
import { attentionLookup, generate, mhaAttention, YuanModel } from '@yuan/model';
// the model package's test helper: the built-in attention plugins in a registry
import { builtinAttentions } from '../../model/test/attention.js';

const tok = new ByteTokenizer();

beforeAll(async () => {
  await initBackend('cpu');
});

/**
 * A third-party attention whose cache is not `ropeAttention`'s: basic attention's K stored as `keys` [B, T, heads, d]
 * (time on axis 1) and V as `values` [B, heads, T, d] (axis 2), plus `seen` [B, H], the sum of every input so far (a
 * fixed-size state), of which the output gets 0.05 × the running sum at each position.
 */
const stateful: TensorAttentionPlugin<Record<string, never>> = {
  ...mhaAttention,
  name: 'stateful',
  description: 'basic attention with renamed, re-laid-out K/V and a running sum of the inputs (test plugin)',
  cache: (spec) => [
    { name: 'keys', timeAxis: 1, elements: spec.hiddenSize },
    { name: 'values', timeAxis: 2, elements: spec.hiddenSize },
    { name: 'seen', elements: spec.hiddenSize },
  ],
  create(spec, options, param) {
    const inner = mhaAttention.create(spec, options, param);
    return {
      forward(x, ctx) {
        const prev = ctx.cache;
        const r = inner.forward(x, {
          ...ctx,
          cache: prev && { k: tf.transpose(prev.keys, [0, 2, 1, 3]), v: prev.values },
        });
        const before = prev?.seen ?? tf.zeros([x.shape[0], x.shape[2]]);
        const out = tf.add(r.out, tf.mul(tf.add(tf.cumsum(x, 1), tf.expandDims(before, 1)), 0.05)) as tf.Tensor3D;
        if (!r.cache) return { out };
        return {
          out,
          cache: { keys: tf.transpose(r.cache.k, [0, 2, 1, 3]), values: r.cache.v, seen: tf.add(before, tf.sum(x, 1)) },
        };
      },
    };
  },
};

/** The same layer with a cache descriptor that forgets `seen`, and one without a cache descriptor. */
const undescribed: TensorAttentionPlugin<Record<string, never>> = {
  ...stateful,
  name: 'undescribed',
  cache: (spec) => stateful.cache!(spec, {}).slice(0, 2),
};
const { cache: _, ...withoutCache } = stateful;
const opaque: TensorAttentionPlugin<Record<string, never>> = { ...withoutCache, name: 'opaque' };

const registry = new PluginRegistry();
for (const p of [...builtinAttentions.list('attention'), stateful, undescribed, opaque]) registry.register(p as never);
const lookup = attentionLookup(registry);

function model(attention: string, maxPositions = 64): YuanModel {
  const config = resolveConfig(
    { model: { vocabSize: 264, hiddenSize: 32, numLayers: 2, numHeads: 4, ffnSize: 64, maxPositions, initStd: 0.5 } },
    { attention: { name: attention, options: {} } },
  );
  return YuanModel.init(config, lookup(attention), 3);
}

const requests: ServeRequest[] = [
  { prompt: 'a', maxNewTokens: 9 },
  { prompt: 'hello there, general', maxNewTokens: 14, logprobs: 2 },
  { prompt: 'xyz', maxNewTokens: 6, temperature: 0.9, seed: 5, n: 3 },
  { prompt: [65, 66, 67, 68, 69, 70, 71], maxNewTokens: 11, stop: ['zz'] },
  { prompt: 'The quick brown fox', maxNewTokens: 4, echo: true, logprobs: 1 },
];

function strip(r: ServeResult) {
  return r.choices.map((c) => ({
    text: c.text,
    finish: c.finishReason,
    n: c.completionTokens,
    lp: c.logprobs?.map((l) => l.token),
  }));
}

describe('ServingEngine: continuous batching', () => {
  for (const attention of ['lfa', 'mha', 'stateful']) {
    it(`${attention}: concurrent requests (different prompt lengths, joining mid-way) get what each gets alone`, async () => {
      const m = model(attention);
      const alone = new ServingEngine(m, tok, { maxBatch: 1 });
      const single: ServeResult[] = [];
      for (const r of requests) single.push(await alone.generate(alone.prepare(r)));
      // the engine alone agrees with the plain single-sequence generator
      expect(tok.decode(generate(m, tok.encode('a'), { maxNewTokens: 9 }))).toBe(single[0].choices[0].text);

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
    });
  }

  it('a cache entry the descriptor does not list is a one-line error; without a descriptor requests take turns', async () => {
    const bad = model('undescribed');
    const engine = new ServingEngine(bad, tok);
    await expect(engine.generate(engine.prepare({ prompt: 'ab', maxNewTokens: 3 }))).rejects.toThrow(
      /^attention plugin "undescribed" returned cache entry "seen", which its cache\(\) descriptor does not list \(keys, values\)$/,
    );
    bad.dispose();

    const m = model('opaque');
    const alone = new ServingEngine(m, tok, { maxBatch: 1 });
    const single: ServeResult[] = [];
    for (const r of requests) single.push(await alone.generate(alone.prepare(r)));
    const engine2 = new ServingEngine(m, tok, { maxBatch: 8 });
    let widest = 0;
    const batched = await Promise.all(
      requests.map((r) => engine2.generate(engine2.prepare(r), () => (widest = Math.max(widest, engine2.batchSize)))),
    );
    expect(batched.map(strip)).toEqual(single.map(strip));
    expect(widest).toBe(3); // the three choices of one request, never two requests
    m.dispose();
  });

  it('SentencePiece: the text is the new ids decoded in context (a first ▁piece keeps its space), streamed and not', async () => {
    const sp = new SentencePieceTokenizer(
      makeModel(
        [
          ['\u2581', 5],
          ['\u2581is', 4],
          ['\u2581the', 3],
          ['is', 2],
          ['e', 1],
        ],
        { byteFallback: false },
      ),
      { addedTokens: ['<eod>'] },
    );
    const config = resolveConfig(
      {
        model: {
          vocabSize: sp.vocabSize,
          hiddenSize: 32,
          numLayers: 1,
          numHeads: 4,
          ffnSize: 64,
          maxPositions: 64,
          initStd: 0.5,
        },
      },
      { attention: { name: 'mha', options: {} } },
    );
    const m = YuanModel.init(config, mhaAttention as never, 11);
    const engine = new ServingEngine(m, sp);
    let spaced = 0;
    for (const prompt of ['the answer is', 'is', 'e e', 'the', 'is the e', 'e']) {
      const p = sp.encode(prompt);
      const ids = generate(m, p, { maxNewTokens: 12, stopIds: [sp.special.eod] }).filter((id) => id !== sp.special.eod);
      if (sp.pieces(ids.slice(0, 1))[0]?.startsWith('\u2581')) spaced++;
      const want = sp.decode([...p, ...ids]).slice(sp.decode(p).length);
      let streamed = '';
      const r = await engine.generate(engine.prepare({ prompt, maxNewTokens: 12 }), (_i, d) => (streamed += d));
      expect(r.choices[0].text).toBe(want);
      expect(streamed).toBe(want);
    }
    expect(spaced).toBeGreaterThan(0); // some completion starts with a ▁ piece, whose space must survive
    m.dispose();
  });

  it('echo with logprobs scores the prompt tokens (first null) then the new ones', async () => {
    const m = model('lfa');
    const engine = new ServingEngine(m, tok);
    const r = await engine.generate(engine.prepare({ prompt: 'abcd', maxNewTokens: 1, echo: true, logprobs: 3 }));
    const c = r.choices[0];
    expect(c.text.startsWith('abcd')).toBe(true);
    expect(c.logprobs!.map((l) => l.token).slice(0, 4)).toEqual(['a', 'b', 'c', 'd']);
    expect(c.logprobs![0].logprob).toBeNull();
    expect(c.logprobs!).toHaveLength(5);
    for (const l of c.logprobs!.slice(1)) {
      expect(l.top).toHaveLength(3);
      expect(l.logprob!).toBeLessThanOrEqual(l.top![0][1] + 1e-9);
    }
    // log-likelihood of the prompt equals the model's own scoring through a full forward pass
    const full = tf.tidy(
      () =>
        tf.logSoftmax(m.forward(tf.tensor2d([[97, 98, 99, 100]], [1, 4], 'int32')).logits).arraySync() as number[][][],
    );
    expect(c.logprobs![2].logprob!).toBeCloseTo(full[0][1][99], 4);
    const zero = await engine.generate(engine.prepare({ prompt: 'abcd', maxNewTokens: 0, echo: true, logprobs: 0 }));
    expect(zero.choices[0]).toMatchObject({ text: 'abcd', finishReason: 'length', completionTokens: 0 });
    m.dispose();
  });

  it('refuses what it cannot serve before generating: prompt past the context, ids outside the vocabulary', () => {
    const m = model('mha', 16);
    const engine = new ServingEngine(m, tok);
    expect(() => engine.prepare({ prompt: 'x'.repeat(17) })).toThrow(ServeInputError);
    expect(() => engine.prepare({ prompt: 'x'.repeat(17) })).toThrow(
      /maximum context length is 16 tokens; the prompt has 17/,
    );
    expect(() => engine.prepare({ prompt: 'x'.repeat(16), maxNewTokens: 1 })).toThrow(/no room/);
    expect(() => engine.prepare({ prompt: [1, 2, 999] })).toThrow(/token id 999/);
    expect(engine.prepare({ prompt: 'x'.repeat(10), maxNewTokens: 100 }).maxNewTokens).toBe(6);
    expect(engine.prepare({ prompt: 'x'.repeat(10) }).maxNewTokens).toBe(6);
    expect(engine.prepare({ prompt: '' }).promptIds).toEqual([tok.special.eod]);
    m.dispose();
  });
});
