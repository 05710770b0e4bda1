import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { escapeRegExp, PluginRegistry, resolveConfig, type JsonObject } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionLookup, loadCheckpoint, mhaAttention, saveCheckpoint, YuanModel } from '../src/index.js';
import { attentionNamed, builtinAttentions } from './attention.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-recognize-'));
const ids = (): tf.Tensor2D => tf.tensor2d([[1, 5, 9, 2, 7]], undefined, 'int32');

/** A checkpoint of `attention` saved as a Hugging Face one would be: config.json without yuan's `yuan` section. */
async function hfCheckpoint(name: string, attention: JsonObject): Promise<{ dir: string; model: YuanModel }> {
  const config = resolveConfig({
    model: { vocabSize: 48, hiddenSize: 16, numLayers: 2, numHeads: 2, ffnSize: 32, maxPositions: 32 },
    attention,
  });
  const model = YuanModel.init(config, attentionNamed(config.attention.name), 5);
  const dir = path.join(tmp, name);
  await saveCheckpoint(dir, model);
  const hf = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  delete hf.yuan;
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf));
  return { dir, model };
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('checkpoint import asks each registered attention plugin whether it wrote the weights', () => {
  const cases: [string, JsonObject, JsonObject][] = [
    ['mha', { name: 'mha', options: {} }, {}],
    ['lfa', { name: 'lfa', options: {} }, {}],
    ['lfa-k3', { name: 'lfa', options: { convs: 1, kernel: 3, norm: false } }, { convs: 1, kernel: 3, norm: false }],
    ['lpa', { name: 'lpa', options: {} }, {}],
    ['lpa-r2', { name: 'lpa', options: { rank: 2 } }, { rank: 2 }],
  ];
  for (const [label, attention, options] of cases) {
    it(`${label}: the plugin and its options come from the tensors; outputs equal the saved model's`, async () => {
      const { dir, model } = await hfCheckpoint(label, attention);
      const back = await loadCheckpoint(dir, attentionNamed);
      expect(back.config.attention).toEqual({ name: attention.name, options });
      expect(back.forward(ids()).logits.arraySync()).toEqual(model.forward(ids()).logits.arraySync());
      back.dispose();
      model.dispose();
    });
  }

  it('none or several recognizing is a one-line error; a named attention (--set attention.name) skips the question', async () => {
    const { dir, model } = await hfCheckpoint('ambiguous', { name: 'mha', options: {} });
    model.dispose();
    // a third-party plugin with basic attention's tensors: both recognize them
    const twin = { ...mhaAttention, name: 'twin', description: 'basic attention under another name' };
    const registry = new PluginRegistry();
    for (const p of [...builtinAttentions.list('attention'), twin]) registry.register(p as never);
    // (the listed tensors include buffers such as rotary_emb.inv_freq, which no plugin owns)
    await expect(loadCheckpoint(dir, attentionLookup(registry))).rejects.toThrow(
      new RegExp(
        `^${escapeRegExp(dir)}: the attention tensors \\(k_proj\\.weight, o_proj\\.weight, q_proj\\.weight, [^)]*v_proj\\.weight\\) fit several attention plugins \\(mha, twin\\); set attention\\.name$`,
      ),
    );
    // the plugins the user named (any source but the built-in packages') are asked first: one of them recognizing wins
    const preferred = new PluginRegistry();
    for (const p of builtinAttentions.list('attention')) preferred.register(p as never, '@yuan/model');
    preferred.register(twin as never, 'yuan-attention-twin');
    const mine = await loadCheckpoint(dir, attentionLookup(preferred, ['@yuan/model']));
    expect(mine.config.attention.name).toBe('twin');
    mine.dispose();
    // ... and several of them recognizing is still the error
    await expect(loadCheckpoint(dir, attentionLookup(preferred, []))).rejects.toThrow(
      /fit several attention plugins \(mha, twin\)/,
    );
    const named = await loadCheckpoint(dir, attentionLookup(registry), { attention: { name: 'twin' } });
    expect(named.config.attention.name).toBe('twin');
    named.dispose();
    // only plugins that do not recognize basic attention's tensors
    const others = new PluginRegistry().register(builtinAttentions.get('attention', 'lfa') as never);
    await expect(loadCheckpoint(dir, attentionLookup(others))).rejects.toThrow(
      new RegExp(
        `^${escapeRegExp(dir)}: no registered attention plugin recognizes the attention tensors \\(k_proj\\.weight, o_proj\\.weight, q_proj\\.weight, [^)]*v_proj\\.weight; registered: lfa\\); set attention\\.name$`,
      ),
    );
  });
});
