import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchLoss, LayeredModel, layerwiseBackward, microBatchGrads, type LayerwiseGroup } from '../src/index.js';
import { YuanModel } from '@yuan/model';
import type { Batch } from '@yuan/data';

const config = resolveConfig({
  model: { vocabSize: 50, hiddenSize: 16, numLayers: 3, numHeads: 2, ffnSize: 24, maxPositions: 32 },
  attention: { name: 'lfa', options: {} },
});
const attention = lfaAttention as never;

function batch(): Batch {
  const rows = 2;
  const seqLength = 8;
  const ids = Int32Array.from({ length: rows * seqLength }, (_, i) => (i * 7 + 3) % 50);
  const targets = Int32Array.from({ length: rows * seqLength }, (_, i) => (i * 5 + 1) % 50);
  const mask = Float32Array.from({ length: rows * seqLength }, (_, i) => (i % 5 === 4 ? 0 : 1));
  const positions = Int32Array.from({ length: rows * seqLength }, (_, i) => i % seqLength);
  return { rows, seqLength, ids, targets, mask, positions };
}

describe('the layer-by-layer backward', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('gives the loss and every gradient of one backward over the whole model, head first, one group at a time', async () => {
    const whole = YuanModel.init(config, attention, 5);
    const layered = LayeredModel.init(config, attention, 5);
    const b = batch();
    const ref = microBatchGrads(whole.params, () => batchLoss(whole, b, true));
    const seen: string[] = [];
    const got = new Map<string, Float32Array>();
    let alive = 0;
    const loss = await layerwiseBackward(layered, b, true, async (g: LayerwiseGroup, grads) => {
      seen.push(g.kind === 'layer' ? `layer ${g.layer}` : g.kind);
      alive = Math.max(alive, grads.size);
      for (const [name, t] of grads) {
        const v = (await t.data()) as Float32Array;
        const prev = got.get(name);
        got.set(name, prev ? prev.map((x, i) => x + v[i]) : v);
        t.dispose();
      }
    });
    expect(seen).toEqual(['head', 'layer 2', 'layer 1', 'layer 0', 'embedding']);
    expect(Math.abs(loss - (await ref.loss.data())[0])).toBeLessThan(1e-6);
    expect([...got.keys()].sort()).toEqual([...whole.params.keys()].sort());
    for (const [name, t] of ref.grads) {
      const want = (await t.data()) as Float32Array;
      const have = got.get(name)!;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(have[i] - want[i]));
      expect(worst, name).toBeLessThan(1e-5);
    }
    expect(alive).toBeLessThan(whole.params.size / 2);
    const lossOf = layered.loss(b, true);
    expect(Math.abs((await lossOf.data())[0] - loss)).toBeLessThan(1e-6);
    tf.dispose([lossOf, ref.loss, ...ref.grads.values()]);
    whole.dispose();
    layered.dispose();
  });

  it('leaves no tensor behind: the count is flat across backwards', async () => {
    const layered = LayeredModel.init(config, attention, 5);
    const b = batch();
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      await layerwiseBackward(layered, b, true, async (_, grads) => {
        for (const t of grads.values()) t.dispose();
      });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size, counts.join(', ')).toBe(1);
    layered.dispose();
  });

  it.each(['full', 'none'] as const)(
    'with recompute %s, lossScale multiplies every gradient (not the loss) and leaves no tensor behind',
    async (recompute) => {
      const layered = LayeredModel.init(config, attention, 5);
      const b = batch();
      const run = async (scale: number) => {
        const got = new Map<string, Float32Array>();
        const loss = await layerwiseBackward(
          layered,
          b,
          true,
          async (_, grads) => {
            for (const [name, t] of grads) {
              const v = (await t.data()) as Float32Array;
              const prev = got.get(name);
              got.set(name, prev ? prev.map((x, i) => x + v[i]) : v);
              t.dispose();
            }
          },
          recompute,
          scale,
        );
        return { loss, got };
      };
      const plain = await run(1);
      const before = tf.memory().numTensors;
      const scaled = await run(0.25);
      expect(tf.memory().numTensors).toBe(before);
      expect(scaled.loss).toBe(plain.loss);
      for (const [name, g] of plain.got) {
        // a power of two: the scaled backward is exact
        expect([...scaled.got.get(name)!], name).toEqual([...g].map((x) => x * 0.25));
      }
      layered.dispose();
    },
  );
});
