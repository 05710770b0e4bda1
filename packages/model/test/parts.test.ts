import { lfaAttention } from '@yuan/attention-lfa';
import { countParameters, getPreset, resolveConfig } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { crossEntropy, modelParameters, YuanModel } from '../src/index.js';

const config = resolveConfig({
  model: { vocabSize: 50, hiddenSize: 16, numLayers: 4, numHeads: 2, ffnSize: 24, maxPositions: 32 },
  attention: { name: 'lfa', options: {} },
});
const attention = lfaAttention as never;
const ids = [
  [3, 7, 1, 9, 4, 4, 12, 0],
  [5, 2, 8, 8, 30, 1, 6, 2],
];
const targets = ids.map((r) => [...r.slice(1), 0]);

function maxDiff(a: Float32Array | number[], b: Float32Array | number[]): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('the model in parts', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('embedding + layers 0..k + layers k+1..L + head give the logits, loss and gradients of the whole model', async () => {
    const whole = YuanModel.init(config, attention, 7);
    const first = YuanModel.init(config, attention, 7, { embedding: true, firstLayer: 0, endLayer: 2, head: false });
    const last = YuanModel.init(config, attention, 7, { embedding: false, firstLayer: 2, endLayer: 4, head: true });
    // each part holds only its own parameters (the last holds its copy of the tied embedding)
    expect(
      [...first.params.keys()].every((n) => n === 'model.embed_tokens.weight' || /^model\.layers\.[01]\./.test(n)),
    ).toBe(true);
    expect(
      [...last.params.keys()].every(
        (n) => ['model.embed_tokens.weight', 'model.norm.weight'].includes(n) || /^model\.layers\.[23]\./.test(n),
      ),
    ).toBe(true);
    expect(first.parameterCount + last.parameterCount - 50 * 16).toBe(whole.parameterCount);
    // per-parameter initialisation: a parameter has the same values in whichever part holds it
    const w = await whole.weights();
    for (const part of [first, last]) for (const [n, v] of await part.weights()) expect(maxDiff(v, w.get(n)!)).toBe(0);

    const x = tf.tensor2d(ids, [2, 8], 'int32');
    const y = tf.tensor2d(targets, [2, 8], 'int32');
    const ref = whole.forward(x).logits;
    const h = first.layers(first.embed(x)).hidden;
    const logits = last.head(last.layers(h).hidden);
    expect(maxDiff((await logits.data()) as Float32Array, (await ref.data()) as Float32Array)).toBeLessThan(1e-5);

    const wholeGrads = tf.variableGrads(() => crossEntropy(whole.forward(x).logits, y), [...whole.params.values()]);
    // the pipeline's way: forward part 1, then part 2 with its loss; backward part 2 gives dL/dh, part 1 takes it
    const hIn = tf.tidy(() => first.layers(first.embed(x)).hidden);
    const lastFn = (hidden: tf.Tensor) => crossEntropy(last.head(last.layers(hidden as tf.Tensor3D).hidden), y);
    const lastVars = [...last.params.values()];
    const lastGrads = tf.variableGrads(() => lastFn(hIn), lastVars);
    const dh = tf.grad((hidden: tf.Tensor) => lastFn(hidden))(hIn);
    const firstVars = [...first.params.values()];
    const firstGrads = tf.variableGrads(
      () => tf.sum(tf.mul(first.layers(first.embed(x)).hidden, dh)) as tf.Scalar,
      firstVars,
    );
    expect(Math.abs((await lastGrads.value.data())[0] - (await wholeGrads.value.data())[0])).toBeLessThan(1e-6);
    const byName = (m: YuanModel, g: Record<string, tf.Tensor>) =>
      new Map([...m.params].map(([n, v]) => [n, g[v.name]]));
    const gw = byName(whole, wholeGrads.grads);
    const g1 = byName(first, firstGrads.grads);
    const g2 = byName(last, lastGrads.grads);
    for (const [n, g] of gw) {
      let sum: tf.Tensor;
      if (n === 'model.embed_tokens.weight')
        sum = tf.add(g1.get(n)!, g2.get(n)!); // the tied copies' gradients summed, as Megatron
      else sum = (g1.get(n) ?? g2.get(n))!;
      expect(maxDiff((await sum.data()) as Float32Array, (await g.data()) as Float32Array), n).toBeLessThan(1e-5);
    }
  });

  it('a part refuses what it does not hold, with a one-line error', () => {
    const mid = YuanModel.init(config, attention, 1, { embedding: false, firstLayer: 1, endLayer: 3, head: false });
    expect(mid.params.has('model.embed_tokens.weight')).toBe(false);
    expect(() => mid.embed(tf.tensor2d([[1]], [1, 1], 'int32'))).toThrow(/has no embedding/);
    expect(() => mid.head(tf.zeros([1, 1, 16]) as tf.Tensor3D)).toThrow(/has no head/);
    expect(() => mid.forward(tf.tensor2d([[1]], [1, 1], 'int32'))).toThrow(/needs the whole model/);
    expect(() =>
      YuanModel.init(config, attention, 1, { embedding: false, firstLayer: 3, endLayer: 5, head: false }),
    ).toThrow(/not a range of the model's 4 layers/);
  });
});

describe('the yuan-25m preset', () => {
  it('has 25,319,936 parameters, 99.5% of them in the layers (the count its description and bench/README give)', () => {
    const specs = modelParameters(resolveConfig(getPreset('yuan-25m').config), lfaAttention as never);
    const total = countParameters(specs);
    const layers = countParameters(specs.filter((s) => s.name.startsWith('model.layers.')));
    expect(total).toBe(25_319_936);
    expect(layers).toBe(8 * 3_148_032);
    expect(layers / total).toBeGreaterThan(0.99);
  });
});
