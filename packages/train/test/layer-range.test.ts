import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '@yuan/data';
import {
  LayeredModel,
  LayerRange,
  layerwiseBackward,
  type GradMap,
  type LayerwiseGroup,
  type RangeBatch,
} from '../src/index.js';

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

function tensors(b: Batch): Required<RangeBatch> {
  const shape: [number, number] = [b.rows, b.seqLength];
  return {
    ids: tf.tensor2d(b.ids, shape, 'int32'),
    positions: tf.tensor2d(b.positions, shape, 'int32'),
    targets: tf.tensor2d(b.targets, shape, 'int32'),
    mask: tf.tensor2d(b.mask, shape),
  };
}

/** A sink that sums every gradient it receives into plain arrays (the tied embedding's two shares add up) and records the groups. */
function collector() {
  const sums = new Map<string, Float32Array>();
  const groups: string[] = [];
  const sink = async (g: LayerwiseGroup, grads: GradMap) => {
    groups.push(g.kind === 'layer' ? `layer ${g.layer}` : g.kind);
    for (const [name, t] of grads) {
      const v = (await t.data()) as Float32Array;
      const prev = sums.get(name);
      sums.set(name, prev ? prev.map((x, i) => x + v[i]) : v.slice());
      t.dispose();
    }
  };
  return { sums, groups, sink };
}

function worstDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  let worst = 0;
  for (const [name, want] of b) {
    const have = a.get(name)!;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(have[i] - want[i]));
  }
  return worst;
}

describe('layer ranges: a pipeline split of the model gives the whole model backward', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('two ranges chained by the upstream gradient [B, T, H] give the loss and every gradient of the whole model', async () => {
    const b = batch();
    const whole = LayeredModel.init(config, attention, 5);
    const ref = collector();
    const refLoss = await layerwiseBackward(whole, b, true, ref.sink);
    expect(ref.groups).toEqual(['head', 'layer 2', 'layer 1', 'layer 0', 'embedding']);

    // stage 0: embedding + layers 0, 1; stage 1: layer 2 + head (its own copy of the tied embedding)
    const a = LayerRange.init(config, attention, 5, { embedding: true, head: false, firstLayer: 0, endLayer: 2 });
    const z = LayerRange.init(config, attention, 5, { embedding: false, head: true, firstLayer: 2, endLayer: 3 });
    expect([a.embedding, a.head, z.embedding, z.head]).toEqual([true, false, false, true]);
    const t = tensors(b);
    tf.dispose(z.forward(t, a.forward(t) as tf.Tensor3D)); // a part makes its constant tables on first use
    const before = tf.memory().numTensors;
    const keptA = a.forwardKeeping(t);
    const keptZ = z.forwardKeeping(t, keptA.result as tf.Tensor3D);
    const lossZ = z.headLoss(keptZ.output!, t);
    expect(Math.abs((await lossZ.data())[0] - refLoss)).toBeLessThan(1e-6);
    const got = collector();
    const top = await z.backward(t, keptZ, undefined, got.sink);
    expect(Math.abs(top.loss! - refLoss)).toBeLessThan(1e-6);
    const bottom = await a.backward(t, keptA, top.dx, got.sink);
    expect(bottom.dx).toBeUndefined();
    expect(got.groups).toEqual(['head', 'layer 2', 'layer 1', 'layer 0', 'embedding']);
    expect(worstDiff(got.sums, ref.sums)).toBeLessThan(1e-5);
    // the one-tape variant (stage recompute) of each range gives the same gradients
    const once = collector();
    const zw = await z.backwardWhole(t, keptA.result as tf.Tensor3D, undefined, once.sink);
    const aw = await a.backwardWhole(t, undefined, zw.dx, once.sink);
    expect(aw.dx).toBeUndefined();
    expect(once.groups).toEqual(['range', 'range']);
    expect(worstDiff(once.sums, ref.sums)).toBeLessThan(1e-5);
    tf.dispose([lossZ, top.dx!, zw.dx!, ...keptA.inputs, keptA.result, ...keptZ.inputs, keptZ.output!, keptZ.result]);
    // nothing of the forwards and backwards is left behind
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(t));
    a.dispose();
    z.dispose();
    whole.dispose();
  });

  for (const recompute of ['none', 'selective'] as const) {
    it(`recompute ${recompute}: kept tapes give full recompute's loss and gradients with each layer's forward once`, async () => {
      const b = batch();
      const whole = LayeredModel.init(config, attention, 5);
      const ref = collector();
      const refLoss = await layerwiseBackward(whole, b, true, ref.sink, 'full');
      // full: 3 layers forward, then each again in its backward
      expect(whole.layerForwards).toBe(6);
      const before = tf.memory().numTensors;
      const got = collector();
      const loss = await layerwiseBackward(whole, b, true, got.sink, recompute);
      expect(whole.layerForwards).toBe(9);
      expect(Math.abs(loss - refLoss)).toBeLessThan(1e-6);
      expect(got.groups).toEqual(['head', 'layer 2', 'layer 1', 'layer 0', 'embedding']);
      expect(worstDiff(got.sums, ref.sums)).toBeLessThan(1e-5);
      expect(tf.memory().numTensors).toBe(before);

      // a pipeline split over tapes: stage 0's forward, then stage 1's forward and backward, then stage 0's backward
      const a = LayerRange.init(config, attention, 5, { embedding: true, head: false, firstLayer: 0, endLayer: 2 });
      const z = LayerRange.init(config, attention, 5, { embedding: false, head: true, firstLayer: 2, endLayer: 3 });
      const t = tensors(b);
      const keptA = a.forwardKeeping(t, undefined, recompute);
      expect(keptA.tapes?.layers.length).toBe(2);
      const keptZ = z.forwardKeeping(t, keptA.result as tf.Tensor3D, recompute);
      expect(Math.abs((await keptZ.result.data())[0] - refLoss)).toBeLessThan(1e-6);
      const split = collector();
      const top = await z.backward(t, keptZ, undefined, split.sink);
      await a.backward(t, keptA, top.dx, split.sink);
      expect(worstDiff(split.sums, ref.sums)).toBeLessThan(1e-5);
      expect(a.layerForwards + z.layerForwards).toBe(3);
      tf.dispose([top.dx!, keptA.result, keptZ.result, ...Object.values(t)]);
      a.release(keptA);
      z.release(keptZ);
      a.dispose();
      z.dispose();
      whole.dispose();
    });
  }

  for (const recompute of ['none', 'selective', 'full', 'stage'] as const) {
    it(`recompute ${recompute}: the split backward (I now, W later) gives the full backward's gradients exactly`, async () => {
      const b = batch();
      const t = tensors(b);
      const a = LayerRange.init(config, attention, 5, { embedding: true, head: false, firstLayer: 0, endLayer: 2 });
      const z = LayerRange.init(config, attention, 5, { embedding: false, head: true, firstLayer: 2, endLayer: 3 });
      tf.dispose(z.forward(t, a.forward(t) as tf.Tensor3D)); // constant tables on first use
      const mode = recompute === 'stage' ? 'full' : recompute;
      // the reference: the full backward of both ranges
      const ref = collector();
      {
        const ka = a.forwardKeeping(t, undefined, mode);
        const kz = z.forwardKeeping(t, ka.result as tf.Tensor3D, mode);
        const top = await z.backward(t, kz, undefined, ref.sink);
        await a.backward(t, ka, top.dx, ref.sink);
        tf.dispose([top.dx!, ka.result, kz.result]);
        a.release(ka);
        z.release(kz, ka.result as tf.Tensor3D);
      }
      const before = tf.memory().numTensors;
      const got = collector();
      const ka = a.forwardKeeping(t, undefined, mode);
      const kz = z.forwardKeeping(t, ka.result as tf.Tensor3D, mode);
      const whole = recompute === 'stage';
      // I of both ranges (top first), then another forward in between, then W in the zero-bubble order
      const iz = await z.backwardInput(t, whole ? undefined : kz, ka.result as tf.Tensor3D, undefined);
      const ia = await a.backwardInput(t, whole ? undefined : ka, undefined, iz.dx);
      expect(ia.dx).toBeUndefined();
      expect(got.groups).toEqual([]);
      tf.dispose(a.forward(t));
      await a.backwardWeights(ia.deferred, got.sink);
      await z.backwardWeights(iz.deferred, got.sink);
      expect(got.groups).toEqual(whole ? ['range', 'range'] : ['layer 1', 'layer 0', 'embedding', 'head', 'layer 2']);
      expect(worstDiff(got.sums, ref.sums)).toBe(0);
      tf.dispose([iz.dx!, ka.result, kz.result]);
      a.release(ka);
      z.release(kz, ka.result as tf.Tensor3D);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose(Object.values(t));
      a.dispose();
      z.dispose();
    });
  }

  it('a range needs the upstream gradient exactly when it has no head', async () => {
    const mid = LayerRange.init(config, attention, 5, { embedding: false, head: false, firstLayer: 1, endLayer: 2 });
    const t = tensors(batch());
    const h = tf.zeros([2, 8, 16]) as tf.Tensor3D;
    const kept = mid.forwardKeeping(t, h);
    await expect(mid.backward(t, kept, undefined, async () => {})).rejects.toThrow(/needs the upstream gradient/);
    tf.dispose([h, kept.output, ...Object.values(t)]);
    mid.dispose();
  });
});
