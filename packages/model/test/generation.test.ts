import { resolveConfig } from '@yuan/core';
import { initBackend, liveTensorCount, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, YuanModel } from '../src/index.js';
import { attentionNamed } from './attention.js';

const base = {
  model: { vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, ffnSize: 64, maxPositions: 64, initStd: 0.5 },
};

beforeAll(async () => {
  await initBackend('cpu');
});

function model(attention: string, options: Record<string, unknown> = {}, seed = 1): YuanModel {
  const config = resolveConfig(base, { attention: { name: attention, options } });
  return YuanModel.init(config, attentionNamed(attention), seed);
}

describe('generation with caches equals full recompute', () => {
  const variants: [string, Record<string, unknown>][] = [
    ['mha', {}],
    ['lfa', {}],
    ['lfa', { convs: 1, kernel: 1 }],
    ['lfa', { convs: 1, kernel: 3 }],
    ['lfa', { convs: 1, kernel: 7 }],
    ['lfa', { convs: 2, kernel: 2, norm: false }],
    ['lfa', { convs: 2, kernel: 3 }],
  ];
  for (const [name, options] of variants) {
    it(`${name} ${JSON.stringify(options)}`, () => {
      const m = model(name, options);
      for (const prompt of [[5], [1, 2], [9, 8, 7, 6, 5, 4, 3, 2]]) {
        const cached = generate(m, prompt, { maxNewTokens: 12 });
        expect(cached).toEqual(generate(m, prompt, { maxNewTokens: 12, useCache: false }));
        const sampled = { maxNewTokens: 12, temperature: 0.8, topK: 10, topP: 0.9, seed: 3 };
        expect(generate(m, prompt, sampled)).toEqual(generate(m, prompt, { ...sampled, useCache: false }));
      }
      m.dispose();
    });
  }
});

describe('sampling', () => {
  it('is seeded, and top-k 1 is greedy', () => {
    const m = model('lfa');
    const opts = { maxNewTokens: 16, temperature: 1.5, seed: 7 };
    expect(generate(m, [3], opts)).toEqual(generate(m, [3], opts));
    expect(generate(m, [3], { ...opts, seed: 8 })).not.toEqual(generate(m, [3], opts));
    expect(generate(m, [3], { maxNewTokens: 16, temperature: 1.5, topK: 1 })).toEqual(
      generate(m, [3], { maxNewTokens: 16 }),
    );
    m.dispose();
  });

  it('stops at a stop id (included) and rejects bad settings with a clear message', () => {
    const m = model('lfa');
    const free = generate(m, [3], { maxNewTokens: 10 });
    expect(generate(m, [3], { maxNewTokens: 10, stopIds: [free[2]] })).toEqual(
      free.slice(0, free.indexOf(free[2]) + 1),
    );
    expect(() => generate(m, [64], { maxNewTokens: 2 })).toThrow('token id 64 is outside the vocabulary (0..63)');
    expect(() => generate(m, [], { maxNewTokens: 2 })).toThrow(/prompt is empty/);
    expect(() => generate(m, [1], { maxNewTokens: 100 })).toThrow(/exceeds maxPositions 64/);
    expect(() => generate(m, [1], { maxNewTokens: 2, topP: 0 })).toThrow(/top-p must be in \(0, 1\]/);
    m.dispose();
  });

  it('leaks no tensors', () => {
    const m = model('lfa');
    generate(m, [1, 2, 3], { maxNewTokens: 6 }); // warm-up: builds the causal masks these shapes need (a bounded cache)
    const before = liveTensorCount();
    for (let i = 0; i < 3; i++) generate(m, [1, 2, 3], { maxNewTokens: 6 });
    tf.tidy(() => {
      m.forward(tf.tensor2d([[1, 2, 3]], undefined, 'int32'));
    });
    expect(liveTensorCount()).toBe(before);
    m.dispose();
  });
});
