import { resolveConfig } from '@yuan/core';
import { LFA_DEFAULTS, lfaAttention } from '@yuan/attention-lfa';
import { crossEntropy, YuanModel } from '@yuan/model';
import { initBackend, tf } from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import { attentionShape, headActivation, layerActivation, sumTerms, type ActivationShape } from '@yuan/plan';

/**
 * Peak bytes of distinct data buffers during one value-and-gradients call of the whole model (TF.js keeps every
 * saved tensor and gradient until the call ends). tf.memory().numBytes counts views and saved clones again, so the
 * engine's buffer table is followed instead.
 */
function peakBuffers(numLayers: number, [B, S, H, A, F, V]: number[]): number {
  const eng = tf.engine() as unknown as {
    trackTensor(a: tf.Tensor, b: unknown): void;
    removeDataId(d: object, b: unknown): void;
    state: { tensorInfo: WeakMap<object, { bytes: number; backend: unknown }> };
  };
  const config = resolveConfig({
    model: { vocabSize: V, hiddenSize: H, numLayers, numHeads: A, ffnSize: F, maxPositions: 512 },
  });
  const model = YuanModel.init(config, lfaAttention, 1);
  const ids = tf.randomUniform([B, S], 0, V, 'int32') as tf.Tensor2D;
  const targets = tf.randomUniform([B, S], 0, V, 'int32') as tf.Tensor2D;
  const vars = [...model.params.values()];
  const step = () => {
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(ids).logits, targets), vars); // the training loss (batchLoss)
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
  };
  step(); // warm caches (causal mask)
  let live = 0;
  let peak = 0;
  const track = eng.trackTensor.bind(eng);
  const remove = eng.removeDataId.bind(eng);
  eng.trackTensor = (a, b) => {
    const fresh = !eng.state.tensorInfo.has(a.dataId);
    track(a, b);
    if (fresh) live += eng.state.tensorInfo.get(a.dataId)!.bytes;
    peak = Math.max(peak, live);
  };
  eng.removeDataId = (d, b) => {
    const info = eng.state.tensorInfo.get(d);
    if (info && info.backend === b) live -= info.bytes;
    remove(d, b);
  };
  try {
    step();
  } finally {
    eng.trackTensor = track;
    eng.removeDataId = remove;
  }
  model.dispose();
  ids.dispose();
  targets.dispose();
  return peak;
}

describe('the activation formula against TensorFlow.js (cpu backend, composed kernels)', () => {
  it('one layer and the head match measured peak buffer bytes within 10%', async () => {
    await initBackend('cpu');
    const dims = [1, 32, 64, 4, 256, 512];
    const [B, S, H, A, F, V] = dims;
    const x: ActivationShape = { batch: B, seq: S, hidden: H, heads: A, ffn: F, vocab: V, fusedKernels: false };
    const one = peakBuffers(1, dims);
    const two = peakBuffers(2, dims);
    const layerParams = 18 * H * H + 4.5 * H;
    const layer = layerActivation(x, lfaAttention.activation!(attentionShape(x), LFA_DEFAULTS));
    // a layer inside one gradient call: its saved tensors, its gradient buffers and its fresh parameter gradients
    const predictedLayer = 4 * (sumTerms(layer.saved) + sumTerms(layer.gradients) + layerParams);
    expect(Math.abs((two - one) / predictedLayer - 1)).toBeLessThan(0.1);
    // what the one-layer model adds besides its layer: embedding input, head and loss, and three [V,H] gradients
    // (gather, tied projection, their sum) since both uses sit in the same gradient call
    const head = headActivation(x);
    const predictedRest = 4 * (B * S * H * 2 + sumTerms(head.saved) + sumTerms(head.gradients) + 3 * V * H + H);
    expect(Math.abs((one - (two - one)) / predictedRest - 1)).toBeLessThan(0.1);
  });
});

const nativeBuilt = await initBackend('native').then(
  () => true,
  (e: Error) => (console.warn(`fused-kernel activation test skipped: ${e.message.split('\n')[0]}`), false),
);

describe.skipIf(!nativeBuilt)(
  'the activation formula against TensorFlow.js (native backend, fused kernels and attention)',
  () => {
    it('one layer and the head match measured peak buffer bytes within 10%, and the layer holds no [S, S] buffer', async () => {
      await initBackend('native');
      const dims = [1, 512, 64, 4, 256, 512];
      const [B, S, H, A, F, V] = dims;
      const x: ActivationShape = { batch: B, seq: S, hidden: H, heads: A, ffn: F, vocab: V, fusedKernels: true };
      const one = peakBuffers(1, dims);
      const two = peakBuffers(2, dims);
      const layer = layerActivation(x, lfaAttention.activation!(attentionShape(x), LFA_DEFAULTS));
      const predictedLayer = 4 * (sumTerms(layer.saved) + sumTerms(layer.gradients) + 18 * H * H + 4.5 * H);
      expect(Math.abs((two - one) / predictedLayer - 1)).toBeLessThan(0.1);
      // the composed attention core alone would hold 7 score-sized buffers (29 MiB here): twice the whole measured layer
      expect(two - one).toBeLessThan(4 * 7 * B * A * S * S);
      const head = headActivation(x);
      const predictedRest = 4 * (B * S * H * 2 + sumTerms(head.saved) + sumTerms(head.gradients) + 3 * V * H + H);
      expect(Math.abs((one - (two - one)) / predictedRest - 1)).toBeLessThan(0.1);
    });
  },
);
