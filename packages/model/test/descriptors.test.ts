import { countParameters, resolveConfig, type JsonObject } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionOptions, attentionSpec, YuanModel } from '../src/index.js';
import { attentionNamed } from './attention.js';

beforeAll(async () => {
  await initBackend('cpu');
});

// every built-in attention, with YUAN's and other options: what each says of itself must be what its layers do
const variants: JsonObject[] = [
  { name: 'mha', options: {} },
  { name: 'lfa', options: {} },
  { name: 'lfa', options: { convs: 1, kernel: 3, norm: false } },
  { name: 'lfa', options: { kernel: 1 } },
  { name: 'lpa', options: {} },
  { name: 'lpa', options: { rank: 3 } },
];

describe('the built-in attention plugins describe themselves truthfully', () => {
  for (const attention of variants) {
    it(`${attention.name} ${JSON.stringify(attention.options)}: the cache descriptor matches the cache; FLOPs are 2 per weight per token`, () => {
      const config = resolveConfig({
        model: { vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, ffnSize: 32, maxPositions: 32 },
        attention,
      });
      const plugin = attentionNamed(config.attention.name);
      const options = attentionOptions(config, plugin);
      const model = YuanModel.init(config, plugin, 1);
      const first = model.forward(tf.tensor2d([[1, 2, 3, 4, 5]], undefined, 'int32'), { useCache: true });
      const next = model.forward(tf.tensor2d([[6, 7]], undefined, 'int32'), { cache: first.cache, useCache: true });
      for (const [l, layer] of next.cache!.layers.entries()) {
        const entries = plugin.cache!(attentionSpec(config, l), options);
        expect(Object.keys(layer).sort()).toEqual(entries.map((e) => e.name).sort());
        for (const e of entries) {
          const [before, after] = [first.cache!.layers[l][e.name], layer[e.name]];
          if (e.timeAxis === undefined) {
            expect(after.shape, e.name).toEqual(before.shape);
            expect(after.size, e.name).toBe(e.elements);
          } else {
            expect([before.shape[e.timeAxis], after.shape[e.timeAxis]], e.name).toEqual([5, 7]);
            expect(after.size / 7, e.name).toBe(e.elements);
          }
        }
      }
      // projections and filters are matMuls: 2 FLOPs per weight per token (biases and norm weights aside)
      const weights = plugin.parameters(attentionSpec(config, 0), options).filter((p) => p.shape.length > 1);
      const shape = { batch: 3, seq: 11, hidden: 16, heads: 2, headDim: 8, fusedKernels: true };
      const flops = plugin.flops!(shape, options);
      expect(flops.projections + (flops.other ?? 0)).toBe(2 * 3 * 11 * countParameters(weights));
      expect(flops.core).toBe(4 * 3 * 11 * 11 * 16);
      first.logits.dispose();
      next.logits.dispose();
      for (const c of [first.cache!, next.cache!])
        for (const layer of c.layers) for (const t of Object.values(layer)) if (!t.isDisposed) t.dispose();
      model.dispose();
    });
  }

  it("named variants for yuan experiment ablation: the paper's Table 1 shorthands belong to their plugins", () => {
    const [lfa, lpa, mha] = ['lfa', 'lpa', 'mha'].map((n) => attentionNamed(n));
    expect(lfa.variant!('nonorm')).toEqual({ convs: 2, kernel: 2, norm: false });
    expect(lfa.variant!('k7')).toEqual({ convs: 1, kernel: 7, norm: false });
    expect(lfa.variant!('r4')).toBeUndefined();
    expect(lpa.variant!('r4')).toEqual({ rank: 4 });
    expect(lpa.variant!('k7')).toBeUndefined();
    expect(mha.variant).toBeUndefined();
  });
});
