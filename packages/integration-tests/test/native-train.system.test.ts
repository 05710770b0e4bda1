// The native backend (@yuan/tensor-native) trains the model (@yuan/model) as the cpu backend does: a cross-package
// scenario, so it lives here rather than in tensor-native (whose dev-dependency on the model made a workspace cycle).
import { lfaAttention } from '@yuan/attention-lfa';
import { getPreset, resolveConfig } from '@yuan/core';
import { crossEntropy, YuanModel } from '@yuan/model';
import { tf } from '@yuan/tensor';
import { registerNativeBackend, type NativeBackendInfo } from '@yuan/tensor-native';
import { describe, expect, it } from 'vitest';
import { attentionNamed } from '../../model/test/attention.js';

/** The native backend if its addon is built, else why not (the tests skip with that one line). */
const native: { info?: NativeBackendInfo; skip?: string } = (() => {
  try {
    return { info: registerNativeBackend() };
  } catch (e) {
    const skip = `native training tests skipped: ${(e as Error).message}`;
    console.warn(skip);
    return { skip };
  }
})();

/** Deterministic pseudo-random values in [-1, 1) (an LCG, so both backends see identical inputs). */
function values(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Losses of `steps` Adam steps of a freshly initialised preset model on fixed random tokens, on one backend. */
async function train(backend: string, preset: string, steps: number, batch: number, seq: number): Promise<number[]> {
  await tf.setBackend(backend);
  const config = resolveConfig(getPreset(preset).config, {});
  const model = YuanModel.init(config, attentionNamed(config.attention.name), 7);
  const tokens = (seed: number) => Int32Array.from(values(batch * seq, seed), (v) => Math.floor((v + 1) * 128));
  const ids = tf.tensor2d(tokens(1), [batch, seq], 'int32');
  const targets = tf.tensor2d(tokens(2), [batch, seq], 'int32');
  const opt = tf.train.adam(1e-3); // the trainer's default peak learning rate
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(ids).logits, targets));
    opt.applyGradients(grads as Parameters<typeof opt.applyGradients>[0]); // Adam declares NamedVariableMap; the grads are a NamedTensorMap
    losses.push(value.dataSync()[0]);
    tf.dispose([value, grads]);
  }
  opt.dispose();
  model.dispose();
  tf.dispose([ids, targets]);
  return losses;
}

describe.skipIf(!native.info)('training on the native backend', () => {
  it.each(['tiny-lfa', 'tiny-mha'])(
    '%s: 20 Adam steps give the cpu backend losses within 1e-4 relative',
    async (preset) => {
      const cpu = await train('cpu', preset, 20, 2, 16);
      const nat = await train('native', preset, 20, 2, 16);
      expect(cpu[19]).toBeLessThan(cpu[0] - 0.2); // it does learn the fixed batch
      nat.forEach((l, i) =>
        expect(Math.abs(l - cpu[i]) / Math.abs(cpu[i]), `step ${i}: native ${l}, cpu ${cpu[i]}`).toBeLessThanOrEqual(
          1e-4,
        ),
      );
    },
    300_000,
  ); // the cpu backend takes about a minute for the 20 steps

  it('keeps the tensor count, tensor bytes and RSS flat over 1300 steps', async () => {
    await tf.setBackend('native');
    const config = resolveConfig(getPreset('tiny-lfa').config, { model: { numLayers: 1 } });
    const model = YuanModel.init(config, lfaAttention, 3);
    const ids = tf.tensor2d(
      Int32Array.from(values(16, 3), (v) => Math.floor((v + 1) * 100)),
      [2, 8],
      'int32',
    );
    const opt = tf.train.adam(1e-3);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(ids).logits, ids));
      opt.applyGradients(grads as Parameters<typeof opt.applyGradients>[0]); // Adam declares NamedVariableMap; the grads are a NamedTensorMap
      tf.dispose([value, grads]);
    };
    for (let i = 0; i < 100; i++) step(); // optimizer slots, the output-array pool, JIT and the heap reach steady state
    const gc = (globalThis as { gc?: () => void }).gc; // exposed by vitest.config.ts so RSS is measured after a collection
    const sample = () => {
      gc?.();
      return { ...tf.memory(), rss: process.memoryUsage().rss };
    };
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const samples = [sample()];
    for (let block = 0; block < 8; block++) {
      for (let i = 0; i < 150; i++) step();
      samples.push(sample());
    }
    const [before, after] = [samples[0], samples[samples.length - 1]];
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    // RSS after a collection still moves by tens of MiB under load (allocator and buffer-pool noise, a one-time jump
    // when the heap grows), so the leak check looks at the typical growth per block of 150 steps: the Theil–Sen slope
    // (the median of the slopes between every two samples), which noise that goes up and down and a single jump leave
    // near zero (the median of the 8 consecutive increments did not: alternating ±15 MiB blocks put it at +4.8 MiB). A
    // leak of one activation per step (60 KiB) adds about 9 MiB to every block.
    const increments = samples.slice(1).map((x, i) => x.rss - samples[i].rss);
    const slopes = samples.flatMap((a, i) => samples.slice(i + 1).map((b, k) => (b.rss - a.rss) / (k + 1)));
    expect(
      median(slopes),
      `RSS per 150 steps ${increments.join(', ')} (samples ${samples.map((x) => x.rss).join(', ')})`,
    ).toBeLessThan(4 * 2 ** 20);
    opt.dispose();
    model.dispose();
    ids.dispose();
  });
});
