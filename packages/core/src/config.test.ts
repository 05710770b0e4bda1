import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { applySet } from './merge.js';
import { getPreset, PRESETS } from './presets.js';
import { registerModule } from './plugin-loader.js';
import { PluginRegistry } from './registry.js';

describe('config', () => {
  it('merges preset, file and --set in precedence order', () => {
    let set = applySet({}, 'attention.name=mha');
    set = applySet(set, 'model.numLayers=2');
    const cfg = resolveConfig(getPreset('tiny-lfa').config, { model: { numLayers: 3 } }, set);
    expect(cfg.attention.name).toBe('mha');
    expect(cfg.model.numLayers).toBe(2);
    expect(cfg.model.hiddenSize).toBe(128);
    expect(cfg.preset).toBe('tiny-lfa');
  });

  it('names the field, the value and the expectation on bad values', () => {
    expect(() => resolveConfig(applySet({}, 'model.hiddenSize=abc'))).toThrow(
      'invalid config: model.hiddenSize = "abc"; expected an integer >= 2',
    );
    expect(() => resolveConfig({ model: { numHeads: 0 } })).toThrow(/model.numHeads = 0/);
    expect(() => resolveConfig({ model: { hiddnSize: 3 } })).toThrow(
      /unknown field model.hiddnSize; known fields: vocabSize/,
    );
    expect(() => resolveConfig({ model: { hiddenSize: 100, numHeads: 3 } })).toThrow(/not divisible/);
    expect(() => resolveConfig({ model: { hiddenSize: 12, numHeads: 4 } })).toThrow(/expected an even number/);
  });

  it('keeps an optional adapter section (a plugin name and options), absent unless given', () => {
    expect('adapter' in resolveConfig({})).toBe(false);
    expect(resolveConfig(applySet(applySet({}, 'adapter.name=lora'), 'adapter.options.rank=16')).adapter).toEqual({
      name: 'lora',
      options: { rank: 16 },
    });
    expect(resolveConfig({ adapter: { name: 'lora' } }).adapter).toEqual({ name: 'lora' });
    expect(() => resolveConfig({ adapter: { options: { rank: 4 } } })).toThrow(
      'invalid config: adapter.name = undefined (missing); expected a string',
    );
    expect(() => resolveConfig({ adapter: { name: 'lora', rank: 4 } })).toThrow(
      'invalid config: unknown field adapter.rank; known fields: name, options',
    );
  });

  it('parses --set values as JSON where they look like JSON', () => {
    expect(applySet({}, 'a.b=1e-3')).toEqual({ a: { b: 0.001 } });
    expect(applySet({}, 'a=true')).toEqual({ a: true });
    expect(applySet({}, 'a=hello')).toEqual({ a: 'hello' });
    expect(applySet({}, 'a.k=[1,2]')).toEqual({ a: { k: [1, 2] } });
    expect(() => applySet({}, 'novalue')).toThrow(/expected key.path=value/);
  });

  it('has the real YUAN 2.0 shapes and unknown presets list the known ones', () => {
    const b102 = resolveConfig(getPreset('yuan2-102b').config).model;
    expect([b102.numLayers, b102.hiddenSize, b102.numHeads, b102.ffnSize, b102.vocabSize]).toEqual([
      84, 8192, 64, 32768, 135040,
    ]);
    expect(PRESETS.map((p) => p.name)).toEqual([
      'yuan2-2b',
      'yuan2-51b',
      'yuan2-102b',
      'tiny-mha',
      'tiny-lfa',
      'tiny-lpa',
      'tiny-pp2dp2',
      'yuan-25m',
    ]);
    expect(() => getPreset('huge')).toThrow(
      'unknown preset plugin "huge" (registered: tiny-lfa, tiny-lpa, tiny-mha, tiny-pp2dp2, yuan-25m, yuan2-102b, yuan2-2b, yuan2-51b)',
    );
  });

  it("presets are plugins of kind preset: a registry with another package's preset finds it, and only the registry is asked", () => {
    const registry = new PluginRegistry();
    registerModule(registry, { plugins: PRESETS }, '@yuan/core');
    registerModule(
      registry,
      {
        plugins: [
          {
            kind: 'preset',
            name: 'tiny-mine',
            description: 'a plugin preset',
            defaults: {},
            config: { model: { numLayers: 1 } },
          },
        ],
      },
      'my-plugin',
    );
    expect(resolveConfig(getPreset('tiny-mine', registry).config).model.numLayers).toBe(1);
    expect(registry.sourceOf('preset', 'tiny-mine')).toBe('my-plugin');
    expect(getPreset('tiny-lfa', registry)).toBe(getPreset('tiny-lfa'));
    expect(() => getPreset('tiny-mine')).toThrow(/unknown preset plugin "tiny-mine"/); // core's own registry has only its presets
    expect(() => getPreset('tiny-lfa', new PluginRegistry())).toThrow(
      'unknown preset plugin "tiny-lfa" (registered: none)',
    );
  });
});
