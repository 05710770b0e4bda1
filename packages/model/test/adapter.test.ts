import { lfaAttention } from '@yuan/attention-lfa';
import { getPreset, resolveConfig } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { ByteTokenizer } from '@yuan/tokenizer';
import { generate, LocalModelAdapter, YuanModel } from '../src/index.js';

let adapter: LocalModelAdapter;
beforeAll(async () => {
  await initBackend('cpu');
  const config = resolveConfig(getPreset('tiny-lfa').config, {
    model: { numLayers: 1, hiddenSize: 32, ffnSize: 64, initStd: 0.3 },
  });
  adapter = new LocalModelAdapter(YuanModel.init(config, lfaAttention as never, 5), new ByteTokenizer());
});

describe('LocalModelAdapter', () => {
  it('generates the same text as the model, cut before a stop string', async () => {
    const tok = adapter.tokenizer;
    const ids = generate(adapter.model, tok.encode('ab'), { maxNewTokens: 12, stopIds: [tok.special.eod] }).filter(
      (i) => i !== tok.special.eod,
    );
    const text = tok.decode(ids);
    const [full] = await adapter.generate({ prompt: 'ab', maxNewTokens: 12 });
    expect(full).toBe(text);
    const stop = text.slice(3, 5);
    const [cut] = await adapter.generate({ prompt: 'ab', maxNewTokens: 12, stop: [stop] });
    expect(cut).toBe(text.slice(0, text.indexOf(stop)));
    const sampled = await adapter.generate({ prompt: 'ab', maxNewTokens: 8, temperature: 1, n: 3, seed: 1 });
    expect(sampled).toHaveLength(3);
    expect(await adapter.generate({ prompt: 'ab', maxNewTokens: 8, temperature: 1, n: 3, seed: 1 })).toEqual(sampled);
  });

  it('log-likelihood is the sum of the continuation tokens log-probabilities', async () => {
    const ll = await adapter.logLikelihood('hello', ' world');
    const ids = adapter.tokenizer.encode('hello world');
    const expected = tf.tidy(() => {
      const logp = tf
        .logSoftmax(
          adapter.model.forward(tf.tensor2d([ids.slice(0, -1)], undefined, 'int32')).logits.squeeze([0]) as tf.Tensor2D,
        )
        .arraySync();
      return ids.slice(5).reduce((s, id, i) => s + logp[4 + i][id], 0);
    });
    expect(ll).toBeCloseTo(expected, 4);
    expect(ll).toBeLessThan(0);
    const { nll, tokens } = await adapter.tokenLosses('hello world');
    expect(tokens).toBe(10);
    expect(nll).toBeCloseTo(-(await adapter.logLikelihood('h', 'ello world')), 3);
  });
});
