import { getPreset, resolveConfig, Rng } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import { AdamW } from '../src/index.js';
import { crossEntropy, YuanModel } from '@yuan/model';
// the model package's test helper: the built-in attention plugins in a registry
import { attentionNamed } from '../../model/test/attention.js';

const nativeBuilt = await initBackend('native').then(
  () => true,
  () => false,
);

/** Losses of 20 Adam steps of a small preset model on a fixed batch, on one backend (selected through yuan, with its patches). */
async function losses(backend: string, preset: string): Promise<number[]> {
  await initBackend(backend);
  const config = resolveConfig(getPreset(preset).config, { model: { numLayers: 2, hiddenSize: 64, ffnSize: 128 } });
  const model = YuanModel.init(config, attentionNamed(config.attention.name), 11);
  const rng = new Rng(5);
  const ids = tf.tensor2d(
    Int32Array.from({ length: 2 * 17 }, () => rng.int(256)),
    [2, 17],
    'int32',
  );
  const inputs = ids.slice([0, 0], [2, 16]) as tf.Tensor2D;
  const targets = ids.slice([0, 1], [2, 16]) as tf.Tensor2D;
  const opt = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }); // the trainer's optimizer (fused on native)
  const names = new Map([...model.params].map(([name, v]) => [v.name, name]));
  const out: number[] = [];
  for (let s = 0; s < 20; s++) {
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(inputs).logits, targets));
    opt.update(model.params, new Map(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1e-3);
    out.push(value.dataSync()[0]);
    tf.dispose([value, grads]);
  }
  opt.dispose();
  model.dispose();
  tf.dispose([ids, inputs, targets]);
  return out;
}

const cpuRuns = new Map<string, Promise<number[]>>();
const cpuLosses = (preset: string) => {
  if (!cpuRuns.has(preset)) cpuRuns.set(preset, losses('cpu', preset));
  return cpuRuns.get(preset)!;
};

describe.each(nativeBuilt ? ['wasm', 'native'] : ['wasm'])('training on %s gives the cpu backend losses', (backend) => {
  it.each(['tiny-lfa', 'tiny-mha'])('%s: 20 AdamW steps within 1e-4 relative', async (preset) => {
    const cpu = await cpuLosses(preset);
    const other = await losses(backend, preset);
    expect(cpu[19]).toBeLessThan(cpu[0] - 0.2);
    other.forEach((l, i) =>
      expect(Math.abs(l - cpu[i]) / cpu[i], `step ${i}: ${backend} ${l}, cpu ${cpu[i]}`).toBeLessThanOrEqual(1e-4),
    );
  });
});
