import { countParameters, type JsonObject } from '@yuan/core';
import { attentionOptions, attentionSpec, generate } from '@yuan/model';
import { initBackend, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { cachedLogits, fullLogits, maxDiff, modelOf, tinyConfig } from './fixture.js';
import { plugins } from './index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const named = (n: string) => plugins.find((p) => p.name === n)! as unknown as TensorAttentionPlugin<never>;

// every plugin with its default options and with others (LFA's filter among them)
const variants: [string, JsonObject][] = [
  ['gqa', {}],
  ['gqa', { kvHeads: 2, filter: true }],
  ['mla', {}],
  ['mla', { qRank: 12, nopeDim: 4, ropeDim: 4, vDim: 6, kvRank: 10, ropeHeads: 2, filter: true }],
  ['based', { window: 4, featureDim: 4 }],
  ['based', { window: 3, featureDim: 2, filter: true }],
  ['landmark', { block: 4 }],
  ['landmark', { block: 3, topK: 2, filter: true }],
];

describe('every attention of the family', () => {
  for (const [name, options] of variants) {
    describe(`${name} ${JSON.stringify(options)}`, () => {
      it('decodes with its cache exactly as full recompute (logits and greedy tokens); the cache is as described', () => {
        const config = tinyConfig(name, options);
        const plugin = named(name);
        const model = modelOf(plugin, config);
        const ids = [3, 9, 1, 22, 7, 5, 30, 2, 11, 4, 8, 19, 6, 25, 13, 17, 21, 12, 14, 16, 18, 20, 23, 24];
        const o = attentionOptions(config, plugin) as never;
        const entries = plugin.cache!(attentionSpec(config, 0), o);
        let seen = 0;
        const cached = cachedLogits(model, ids, 5, (cache) => {
          seen++;
          const length = cache.length;
          for (const layer of cache.layers) {
            expect(Object.keys(layer).sort()).toEqual(entries.map((e) => e.name).sort());
            for (const e of entries) {
              const t = layer[e.name];
              const per = e.timeAxis === undefined ? t.size : t.size / t.shape[e.timeAxis];
              if (e.timeAxis !== undefined) expect(t.shape[e.timeAxis], e.name).toBe(length);
              expect(per, e.name).toBe(e.elements);
            }
          }
        });
        expect(seen).toBe(ids.length - 4);
        const full = fullLogits(model, ids);
        expect(maxDiff(cached, full)).toBeLessThan(1e-4);
        expect(Math.max(...full.flat().map(Math.abs))).toBeGreaterThan(1e-3);
        const withCache = generate(model, [1, 2, 3], { maxNewTokens: 12 });
        expect(withCache).toEqual(generate(model, [1, 2, 3], { maxNewTokens: 12, useCache: false }));
        model.dispose();
      });

      it('rows of a batch do not mix: a left-padded batch (as batched serving makes) gives each row its logits alone', () => {
        const model = modelOf(named(name), tinyConfig(name, options));
        const short = [3, 9, 1, 22, 7, 5, 30, 2];
        const long = [6, 25, 13, 17, 21, 12, 14, 16, 18, 20, 23, 24];
        // based and LFA's filter read no keyBias (serving prefills each request alone; their state has no time axis):
        // their short row is padded on the right instead, where causality keeps the padding out
        const left = name === 'based' || options.filter ? 0 : 4;
        const row0 = [...Array(left).fill(0), ...short, ...Array(4 - left).fill(0)];
        const r = model.forward(tf.tensor2d([row0, long], undefined, 'int32'), {
          positions: tf.tensor2d(
            [row0.map((_, j) => Math.max(0, j - left)), long.map((_, j) => j)],
            undefined,
            'int32',
          ),
          keyBias: tf.tensor4d(new Float32Array(24).fill(-1e9, 0, left), [2, 1, 1, 12]),
        });
        const [batched0, batched1] = r.logits.arraySync() as number[][][];
        r.logits.dispose();
        expect(maxDiff(batched0.slice(left, left + 8), fullLogits(model, short))).toBeLessThan(1e-4);
        expect(maxDiff(batched1, fullLogits(model, long))).toBeLessThan(1e-4);
        model.dispose();
      });

      it('its FLOPs are 2 per projection weight per token', () => {
        const config = tinyConfig(name, options);
        const plugin = named(name);
        const o = attentionOptions(config, plugin) as never;
        const weights = plugin.parameters(attentionSpec(config, 0), o).filter((p) => p.shape.length > 1);
        const flops = plugin.flops!({ batch: 3, seq: 11, hidden: 32, heads: 4, headDim: 8, fusedKernels: true }, o);
        expect(flops.projections + (flops.other ?? 0)).toBe(2 * 3 * 11 * countParameters(weights));
        expect(flops.core).toBeGreaterThan(0);
        const act = plugin.activation!({ batch: 3, seq: 11, hidden: 32, heads: 4, headDim: 8, fusedKernels: true }, o);
        expect(act.saved.length).toBeGreaterThan(0);
      });

      it.skipIf(name === 'landmark')('its checkpoint tensors are recognized as its own with its options', () => {
        const config = tinyConfig(name, options);
        const plugin = named(name);
        const spec = attentionSpec(config, 0);
        const o = attentionOptions(config, plugin) as Record<string, unknown>;
        const shapes = new Map(plugin.parameters(spec, o as never).map((p) => [p.name, p.shape]));
        const found = plugins.filter((p) => p.recognize?.(shapes, spec));
        expect(found.map((p) => p.name)).toEqual([name]);
        const again = { ...(plugin.defaults as object), ...found[0].recognize!(shapes, spec) } as Record<
          string,
          unknown
        >;
        expect(plugin.parameters(spec, again as never)).toEqual(plugin.parameters(spec, o as never));
      });
    });
  }
  it('based decodes with memory that does not grow with the generated length beyond its window', () => {
    const model = modelOf(named('based'), tinyConfig('based', { window: 8, featureDim: 4 }));
    const sizes: number[] = [];
    const ids = Array.from({ length: 40 }, (_, i) => (i * 7) % 40);
    cachedLogits(model, ids, 1, (cache) =>
      sizes.push(cache.layers.reduce((n, l) => n + Object.values(l).reduce((m, t) => m + t.size, 0), 0)),
    );
    expect(new Set(sizes).size).toBe(1); // the same after 1 token as after 40 (window 8)
    const gqa = modelOf(named('gqa'), tinyConfig('gqa'));
    const grown: number[] = [];
    cachedLogits(gqa, ids.slice(0, 3), 1, (cache) => grown.push(cache.layers[0].k.size));
    expect(grown).toEqual([8, 16, 24]); // a K/V cache, by contrast, grows by one head's K per token
    model.dispose();
    gqa.dispose();
  });

  it('frees what it allocates: no tensors left after a cached generation', () => {
    for (const name of ['gqa', 'mla', 'based', 'landmark']) {
      const model = modelOf(named(name), tinyConfig(name, { filter: true }));
      generate(model, [1, 2], { maxNewTokens: 2 });
      const before = tf.memory().numTensors;
      generate(model, [1, 2, 3], { maxNewTokens: 4 });
      expect(tf.memory().numTensors, name).toBe(before);
      model.dispose();
    }
  });
});
