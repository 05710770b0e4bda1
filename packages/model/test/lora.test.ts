import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { PluginRegistry, resolveConfig, Rng, type YuanConfig } from '@yuan/core';
import {
  initBackend,
  linear,
  liveTensorCount,
  openSafetensors,
  ropeAttention,
  tf,
  type TensorAttentionPlugin,
} from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdapterModule,
  adapterLookup,
  loadAdapter,
  loraAdapter,
  loraScale,
  mhaAttention,
  modelParameters,
  plugins,
  readAdapterFiles,
  saveAdapter,
  YuanModel,
  type LoraOptions,
} from '../src/index.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-lora-'));
const H = 16;
const F = 24;

function config(attention: string): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 40, hiddenSize: H, numLayers: 2, numHeads: 2, ffnSize: F, maxPositions: 32 },
    attention: { name: attention, options: {} },
  });
}
const lfa = lfaAttention as unknown as TensorAttentionPlugin<unknown>;
const mha = mhaAttention as unknown as TensorAttentionPlugin<unknown>;
const ids = [
  [3, 7, 1, 9, 4, 4, 12, 0],
  [5, 2, 8, 8, 30, 1, 6, 2],
];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function logitsOf(model: YuanModel): Float32Array {
  const x = tf.tensor2d(ids, [2, 8], 'int32');
  const { logits } = model.forward(x);
  const out = logits.dataSync() as Float32Array;
  tf.dispose([x, logits]);
  return out;
}

/** Random adapter weights (B is not zero, so the adapter changes the model) for the specs the plugin lists. */
function randomWeights(adapter: AdapterModule, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    adapter.specs.map((s) => [
      s.name,
      Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.3),
    ]),
  );
}

/** W [out, in] += scale · B [out, r] · A [r, in] on rows [row, row + out) of a stored weight with `cols` columns, in plain JS. */
function addLowRank(
  w: Float32Array,
  cols: number,
  row: number,
  a: Float32Array,
  b: Float32Array,
  r: number,
  scale: number,
): void {
  const out = b.length / r;
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[i * r + k] * a[k * cols + j];
      w[(row + i) * cols + j] += scale * s;
    }
  }
}

describe('the lora adapter', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('lists PEFT-named A [r, in] (uniform ±1/√in) and B [out, r] (zeros) for each targeted module, fused parts included', () => {
    const specs = modelParameters(config('lfa'), lfa);
    const options = { ...loraAdapter.defaults, rank: 4, targets: ['q_proj', 'k_proj', 'up_proj', 'down_proj'] };
    const p = loraAdapter.parameters(specs, loraAdapter.validate!(options));
    const byName = new Map(p.map((s) => [s.name, s]));
    expect(p).toHaveLength(2 * 4 * 2);
    expect(byName.get('model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual({
      name: 'model.layers.0.self_attn.q_proj.lora_A.weight',
      shape: [4, H],
      init: { kind: 'uniform', bound: 1 / Math.sqrt(H) },
    });
    expect(byName.get('model.layers.1.self_attn.k_proj.lora_B.weight')).toEqual({
      name: 'model.layers.1.self_attn.k_proj.lora_B.weight',
      shape: [H, 4],
      init: { kind: 'zeros' },
    });
    expect(byName.get('model.layers.0.mlp.up_proj.lora_B.weight')?.shape).toEqual([F, 4]);
    expect(byName.get('model.layers.0.mlp.down_proj.lora_A.weight')?.shape).toEqual([4, F]);
    expect(
      [...byName.keys()].some((n) => n.includes('v_proj') || n.includes('gate_proj') || n.includes('qk_proj')),
    ).toBe(false);
    // all-linear takes every linear layer of the decoder layers (not the convolutions, norms or embeddings)
    const all = loraAdapter.parameters(
      specs,
      loraAdapter.validate!({ ...loraAdapter.defaults, targets: 'all-linear' }),
    );
    expect(
      new Set(
        all.map((s) =>
          s.name.replace(/^model\.layers\.\d+\.(self_attn|mlp)\./, '').replace(/\.lora_[AB]\.weight$/, ''),
        ),
      ),
    ).toEqual(new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'gate_proj', 'down_proj']));
    // a regular expression (PEFT's string target_modules) must match the whole module name
    const layer1 = loraAdapter.parameters(
      specs,
      loraAdapter.validate!({ ...loraAdapter.defaults, targets: String.raw`model\.layers\.1\.self_attn\.(q|v)_proj` }),
    );
    expect(layer1.map((s) => s.name)).toEqual([
      'model.layers.1.self_attn.q_proj.lora_A.weight',
      'model.layers.1.self_attn.q_proj.lora_B.weight',
      'model.layers.1.self_attn.v_proj.lora_A.weight',
      'model.layers.1.self_attn.v_proj.lora_B.weight',
    ]);
  });

  it('an adapted layer computes base(x) + scale·(x·Aᵀ)·Bᵀ on its own block of a fused weight (q_proj/k_proj, up_proj/gate_proj halves)', async () => {
    for (const [name, attention, targets] of [
      ['lfa', lfa, ['q_proj', 'up_proj']],
      ['lfa', lfa, ['k_proj', 'gate_proj', 'o_proj']],
      ['mha', mha, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'gate_proj', 'down_proj']],
    ] as const) {
      const cfg = config(name);
      const options: LoraOptions = { ...loraAdapter.defaults, rank: 3, alpha: 5, targets: [...targets] };
      const base = YuanModel.init(cfg, attention, 11);
      const specs = modelParameters(cfg, attention);
      const fresh = AdapterModule.init(loraAdapter as never, options as never, specs, 3);
      const weights = randomWeights(fresh, 5);
      fresh.dispose();
      // the reference: the base weights with scale·B·A added by hand, in the Hugging Face layout of each fused weight
      const merged = new Map([...(await base.weights())].map(([n, w]) => [n, Float32Array.from(w)]));
      for (const s of specs) {
        const parts = s.parts ?? [s.name];
        parts.forEach((p, i) => {
          const module = p.replace(/\.weight$/, '');
          const a = weights.get(`${module}.lora_A.weight`);
          if (a)
            addLowRank(
              merged.get(s.name)!,
              s.shape[1],
              (i * s.shape[0]) / parts.length,
              a,
              weights.get(`${module}.lora_B.weight`)!,
              3,
              5 / 3,
            );
        });
      }
      const reference = YuanModel.fromWeights(cfg, attention, merged);
      const plain = logitsOf(base);
      const adapter = AdapterModule.fromWeights(loraAdapter as never, options as never, specs, weights);
      base.attachAdapter(adapter);
      const adapted = logitsOf(base);
      const want = logitsOf(reference);
      expect(maxDiff(plain, want), `${name} ${targets}: the adapter changes the logits`).toBeGreaterThan(1e-2);
      expect(maxDiff(adapted, want), `${name} ${targets}`).toBeLessThan(2e-5);
      // merging gives the same weights as the hand-made reference
      const m = adapter.merge(await YuanModel.init(cfg, attention, 11).weights());
      for (const [n, w] of merged) expect(maxDiff(m.get(n)!, w), n).toBeLessThan(1e-5);
      base.dispose();
      reference.dispose();
    }
  });

  it('dropout is on only while training, drawn from the seed: the same seed gives the same output', () => {
    const cfg = config('mha');
    const model = YuanModel.init(cfg, mha, 1);
    const specs = modelParameters(cfg, mha);
    const init = AdapterModule.init(loraAdapter as never, { dropout: 0.5, targets: ['q_proj', 'v_proj'] }, specs, 2);
    const adapter = AdapterModule.fromWeights(
      loraAdapter as never,
      { dropout: 0.5, targets: ['q_proj', 'v_proj'] },
      specs,
      randomWeights(init, 9),
    );
    init.dispose();
    model.attachAdapter(adapter);
    const off = logitsOf(model);
    adapter.layer.training(42);
    const on1 = logitsOf(model);
    adapter.layer.training(42);
    const on2 = logitsOf(model);
    adapter.layer.training(43);
    const on3 = logitsOf(model);
    adapter.layer.training(undefined);
    expect(maxDiff(off, logitsOf(model))).toBe(0);
    expect(maxDiff(on1, on2)).toBe(0);
    expect(maxDiff(on1, off)).toBeGreaterThan(1e-3);
    expect(maxDiff(on1, on3)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('gradients reach only A and B, and repeated passes leave no tensors behind', () => {
    const cfg = config('lfa');
    const model = YuanModel.init(cfg, lfa, 1);
    const adapter = AdapterModule.init(
      loraAdapter as never,
      { rank: 2, targets: 'all-linear' },
      modelParameters(cfg, lfa),
      2,
    );
    model.attachAdapter(adapter);
    const x = tf.tensor2d(ids, [2, 8], 'int32');
    const loss = () => tf.mean(tf.square(model.forward(x).logits)) as tf.Scalar;
    const before = liveTensorCount();
    for (let i = 0; i < 3; i++) {
      const { value, grads } = tf.variableGrads(loss, [...adapter.params.values()]);
      const names = new Map([...adapter.params].map(([n, v]) => [v.name, n]));
      // B starts at zero, so only B has a gradient on the first pass (A's is B-weighted)
      const nonzero = Object.entries(grads)
        .filter(([, g]) => Math.max(...(g.dataSync() as Float32Array).map(Math.abs)) > 0)
        .map(([k]) => names.get(k)!);
      expect(nonzero.length).toBeGreaterThan(0);
      expect(nonzero.every((n) => n.endsWith('lora_B.weight'))).toBe(true);
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(liveTensorCount()).toBe(before);
    x.dispose();
    model.dispose();
    expect(adapter.params.get('model.layers.0.mlp.up_proj.lora_A.weight')!.isDisposed).toBe(true);
  });

  it('options are checked: a bad value or a target that matches nothing is one line naming adapter.options.<field>', () => {
    const specs = modelParameters(config('lfa'), lfa);
    const v = (o: Record<string, unknown>) =>
      loraAdapter.parameters(specs, loraAdapter.validate!({ ...loraAdapter.defaults, ...o }));
    expect(() => v({ rank: 0 })).toThrow('invalid config: adapter.options.rank = 0; expected an integer >= 1');
    expect(() => v({ dropout: 1 })).toThrow(
      /^invalid config: adapter\.options\.dropout = 1; expected a number >= 0 <= 0\.999999$/,
    );
    expect(() => v({ alpha: -1 })).toThrow(/adapter\.options\.alpha = -1/);
    expect(() => v({ ranks: 4 })).toThrow(
      /unknown field adapter\.options\.ranks; known fields: rank, alpha, dropout, rslora/,
    );
    expect(() => v({ targets: [] })).toThrow(/adapter\.options\.targets = \[\]; expected a non-empty list/);
    expect(() => v({ targets: ['q_proj', 'x_proj'] })).toThrow(
      'invalid config: adapter.options.targets: "x_proj" matches no linear layer of this model (its linear layers: q_proj, k_proj, v_proj, o_proj, up_proj, gate_proj, down_proj)',
    );
    expect(() => v({ targets: 'nothing.*' })).toThrow(/targets = "nothing\.\*" matches no linear layer/);
    expect(() => v({ targets: 'q_proj' })).toThrow(
      /a string is a regular expression over full module names, as in PEFT: give a list, \["q_proj"\], for modules named q_proj$/,
    );
    expect(() => v({ targets: '(' })).toThrow(/is not a regular expression/);
    expect(loraScale({ ...loraAdapter.defaults, rank: 16, alpha: 32 })).toBe(2);
    expect(loraScale({ ...loraAdapter.defaults, rank: 16, alpha: 32, rslora: true })).toBe(8);
  });

  it('an attention that does not compute a targeted weight through linear() is an error at the first pass, not a silent no-op', () => {
    const direct: TensorAttentionPlugin<unknown> = {
      ...mha,
      name: 'mha-direct',
      create(spec, options, param) {
        const [wq, wk, wv, wo] = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
        const heads = (x: tf.Tensor) =>
          tf.reshape(x, [x.shape[0], x.shape[1], spec.numHeads, spec.headDim]) as tf.Tensor4D;
        return {
          forward(x, ctx) {
            const q = tf.reshape(
              tf.matMul(tf.reshape(x, [-1, spec.hiddenSize]), wq as tf.Tensor2D, false, true),
              x.shape,
            );
            const r = ropeAttention(heads(q), heads(linear(x, wk)), heads(linear(x, wv)), ctx);
            return { out: linear(r.out, wo) as tf.Tensor3D, cache: r.cache };
          },
        };
      },
    };
    const cfg = config('mha');
    const model = YuanModel.init(cfg, direct, 1);
    model.attachAdapter(
      AdapterModule.init(loraAdapter as never, { targets: ['q_proj', 'v_proj'] }, modelParameters(cfg, direct), 2),
    );
    expect(() => logitsOf(model)).toThrow(
      "the mha-direct attention does not compute model.layers.0.self_attn.q_proj.weight, model.layers.1.self_attn.q_proj.weight through linear(), so the adapter cannot change it: leave it out of the adapter's targets",
    );
    model.dispose();
  });

  it('a model served by the native decoder (which runs no adapters) drops it when an adapter is attached', async () => {
    const cfg = config('mha');
    const weights = await YuanModel.init(cfg, mha, 3).weights();
    const model = YuanModel.lazy(cfg, mha, (s) => weights.get(s.name)!, {} as never);
    expect(model.decoder).toBeDefined();
    model.attachAdapter(AdapterModule.init(loraAdapter as never, { rank: 2 }, modelParameters(cfg, mha), 1));
    expect(model.decoder).toBeUndefined();
    model.dispose();
  });

  it('saves PEFT files (adapter_config.json, base_model.model.* tensors) and loads them back onto a model by peft_type', async () => {
    const cfg = config('lfa');
    const specs = modelParameters(cfg, lfa);
    const options = { rank: 4, alpha: 16, dropout: 0.1, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] };
    const init = AdapterModule.init(loraAdapter as never, options, specs, 2);
    const adapter = AdapterModule.fromWeights(loraAdapter as never, options, specs, randomWeights(init, 4));
    init.dispose();
    const dir = path.join(tmp, 'adapter');
    await saveAdapter(dir, adapter, '/models/base');
    const json = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: '/models/base',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.1,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      bias: 'none',
      use_rslora: false,
    });
    const st = await openSafetensors(path.join(dir, 'adapter_model.safetensors'));
    expect(st.entries.get('base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight')?.shape).toEqual([4, H]);
    expect(st.entries.get('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight')?.shape).toEqual([H, 4]);
    expect(st.entries.size).toBe(16);
    await st.close();

    const registry = new PluginRegistry();
    for (const p of plugins) registry.register(p as never, '@yuan/model');
    const model = YuanModel.init(cfg, lfa, 8);
    const want = YuanModel.init(cfg, lfa, 8);
    want.attachAdapter(adapter);
    const loaded = await loadAdapter(model, dir, adapterLookup(registry));
    expect(loaded.options).toEqual({ ...options, rslora: false });
    expect(maxDiff(logitsOf(model), logitsOf(want))).toBe(0);
    model.dispose();
    want.dispose();
  });

  it('refuses PEFT settings it does not implement and adapters that do not fit the model, naming them', async () => {
    const registry = new PluginRegistry();
    for (const p of plugins) registry.register(p as never, '@yuan/model');
    const lookup = adapterLookup(registry);
    const cfg = config('lfa');
    const specs = modelParameters(cfg, lfa);
    const dir = path.join(tmp, 'refused');
    await saveAdapter(dir, AdapterModule.init(loraAdapter as never, { rank: 2 }, specs, 1), null);
    const file = path.join(dir, 'adapter_config.json');
    const original = readFileSync(file, 'utf8');
    const edit = (change: Record<string, unknown>) =>
      writeFileSync(file, JSON.stringify({ ...JSON.parse(original), ...change }));
    edit({ use_dora: true });
    await expect(readAdapterFiles(dir, lookup)).rejects.toThrow(
      `${file}: use_dora = true is a PEFT LoRA setting yuan does not implement (it needs false)`,
    );
    edit({ peft_type: 'IA3' });
    await expect(readAdapterFiles(dir, lookup)).rejects.toThrow(
      'no adapter plugin reads PEFT peft_type "IA3" (registered: LORA (lora))',
    );
    edit({ r: 0 });
    await expect(readAdapterFiles(dir, lookup)).rejects.toThrow(`${file}: r = 0; expected an integer >= 1`);
    // r 3 where the tensors have rank 2
    edit({ r: 3 });
    const model = YuanModel.init(cfg, lfa, 1);
    await expect(loadAdapter(model, dir, lookup)).rejects.toThrow(
      /adapter_model\.safetensors: model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has 32 values; the base model and options imply \[3,16\] = 48/,
    );
    edit({ target_modules: ['q_proj'] });
    await expect(loadAdapter(model, dir, lookup)).rejects.toThrow(
      /adapter_model\.safetensors holds tensors model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight, .* \(\+1 more\) that the lora adapter with these options does not have/,
    );
    writeFileSync(file, original);
    const mhaModel = YuanModel.init(config('mha'), mha, 1);
    await expect(loadAdapter(mhaModel, path.join(tmp, 'nowhere'), lookup)).rejects.toThrow(
      `adapter folder not found: ${path.join(tmp, 'nowhere')}`,
    );
    expect(existsSync(file)).toBe(true);
    model.dispose();
    mhaModel.dispose();
  });
});
