// GQA's lower end point against the example third-party plugin (examples/attention-mqa): here rather than in
// @yuan/attention-family, so that a published package has no test dependency on an unpublished example.
import { gqaAttention } from '@yuan/attention-family';
import { resolveConfig, type JsonObject, type YuanConfig } from '@yuan/core';
import { attentionSpec, YuanModel } from '@yuan/model';
import { initBackend, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { mqaAttention } from 'yuan-attention-mqa';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackend('cpu');
});

const ids = [3, 9, 1, 22, 7, 5, 30, 2, 11, 4, 8, 19, 6, 25];
const plugin = (p: unknown) => p as TensorAttentionPlugin<unknown>;

/** A tiny config (hidden 32, 4 heads of 8, 2 layers) with this attention. */
function tinyConfig(name: string, options: JsonObject = {}): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 40, hiddenSize: 32, numLayers: 2, numHeads: 4, ffnSize: 64, maxPositions: 128 },
    attention: { name, options },
  });
}

/** Logits [T, V] of the whole sequence at once. */
function fullLogits(model: YuanModel): number[][] {
  const r = model.forward(tf.tensor2d([ids], undefined, 'int32'));
  const out = (r.logits.arraySync() as number[][][])[0];
  r.logits.dispose();
  return out;
}

describe('gqa with kvHeads = 1', () => {
  it('is the mqa example (examples/attention-mqa), given the same weights, and caches one K/V head', () => {
    const mqa = YuanModel.init(tinyConfig('mqa', { kvHeads: 1 }), plugin(mqaAttention), 4);
    const weights = new Map([...mqa.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
    const config = tinyConfig('gqa', { kvHeads: 1 });
    const gqa = YuanModel.fromWeights(config, plugin(gqaAttention), weights);
    const want = fullLogits(mqa);
    const got = fullLogits(gqa);
    let diff = 0;
    got.forEach((row, i) => row.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - want[i][j])))));
    expect(diff).toBeLessThan(1e-5);
    expect(Math.max(...want.flat().map(Math.abs))).toBeGreaterThan(1e-3);
    // one K/V head of 8 per layer (K and V), where the example caches the shared head for every query head
    const p = plugin(gqaAttention);
    const o = p.validate!({ ...(p.defaults as object), ...config.attention.options });
    let perToken = 0;
    for (let l = 0; l < config.model.numLayers; l++)
      for (const e of p.cache!(attentionSpec(config, l), o)) perToken += e.timeAxis === undefined ? 0 : e.elements;
    expect(perToken).toBe(2 * 2 * 8);
  });
});
