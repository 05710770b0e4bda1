import { attentionSpec, mhaAttention, YuanModel } from '@yuan/model';
import { initBackend, type TensorAttentionPlugin } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { fullLogits, maxDiff, tinyConfig } from './fixture.js';
import { gqaAttention, mlaAttention } from './index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const ids = [3, 9, 1, 22, 7, 5, 30, 2, 11, 4, 8, 19, 6, 25];
const plugin = (p: unknown) => p as TensorAttentionPlugin<unknown>;

function weightsOf(model: YuanModel): Map<string, Float32Array> {
  return new Map([...model.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
}

/** The cache elements per token of every layer, from the plugin's descriptor. */
function cachePerToken(p: TensorAttentionPlugin<unknown>, config: ReturnType<typeof tinyConfig>): number {
  const o = p.validate!({ ...(p.defaults as object), ...config.attention.options });
  let n = 0;
  for (let l = 0; l < config.model.numLayers; l++)
    for (const e of p.cache!(attentionSpec(config, l), o)) n += e.timeAxis === undefined ? 0 : e.elements;
  return n;
}

describe('grouped-query attention at its end points, and converted to multi-head latent attention', () => {
  it('gqa with kvHeads = heads is mha, given the same weights', () => {
    const mha = YuanModel.init(tinyConfig('mha'), mhaAttention, 3);
    const gqa = YuanModel.fromWeights(tinyConfig('gqa', { kvHeads: 4 }), plugin(gqaAttention), weightsOf(mha));
    const want = fullLogits(mha, ids);
    expect(maxDiff(fullLogits(gqa, ids), want)).toBeLessThan(1e-5);
    expect(Math.max(...want.flat().map(Math.abs))).toBeGreaterThan(1e-3);
  });

  for (const kvHeads of [1, 2, 4]) {
    it(`gqa (kvHeads ${kvHeads}) converted to mla (TransMLA) gives the same logits and the same cache bytes per token`, () => {
      const source = tinyConfig('gqa', { kvHeads });
      const gqa = YuanModel.init(source, plugin(gqaAttention), 5);
      const weights = weightsOf(gqa);
      const converted = new Map<string, Float32Array>();
      let options: Record<string, unknown> = {};
      for (const [n, w] of weights) if (!n.includes('.self_attn.')) converted.set(n, w);
      for (let l = 0; l < source.model.numLayers; l++) {
        const prefix = `model.layers.${l}.self_attn.`;
        const layer = new Map(
          [...weights].filter(([n]) => n.startsWith(prefix)).map(([n, w]) => [n.slice(prefix.length), w]),
        );
        const r = mlaAttention.convert!({ name: 'gqa', options: { kvHeads } }, attentionSpec(source, l), layer);
        options = r.options as Record<string, unknown>;
        for (const [n, w] of r.weights) converted.set(prefix + n, w);
      }
      const target = tinyConfig('mla', options as never);
      const mla = YuanModel.fromWeights(target, plugin(mlaAttention), converted);
      expect(maxDiff(fullLogits(mla, ids), fullLogits(gqa, ids))).toBeLessThan(1e-4);
      expect(cachePerToken(plugin(mlaAttention), target)).toBe(cachePerToken(plugin(gqaAttention), source));
      expect(cachePerToken(plugin(gqaAttention), source)).toBe(2 * 2 * kvHeads * 8);
    });
  }

  it('refuses to convert what it cannot convert exactly', () => {
    const spec = attentionSpec(tinyConfig('gqa'), 0);
    expect(() => mlaAttention.convert!({ name: 'lfa', options: {} }, spec, new Map())).toThrow(
      /^attention mla: cannot convert from "lfa" \(only gqa and mha checkpoints\)$/,
    );
    expect(() => mlaAttention.convert!({ name: 'gqa', options: { filter: true } }, spec, new Map())).toThrow(
      /cannot convert gqa with filter/,
    );
  });
});
