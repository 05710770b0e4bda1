// A frozen base held in its weight format (QLoRA-style): the adapter's loss and gradients over the packed linears
// (`YuanModel.fromStoredWeights`, products by `packedLinear`) against the same base dequantized to float32 parameters,
// for bf16, int8 and int4 weights, with the native weight kernels and without them (dequantized products).
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig, Rng } from '@yuan/core';
import {
  bf16Format,
  decodeKernels,
  initBackend,
  int4Format,
  int8Format,
  loadDecodeKernels,
  tf,
  type TensorAttentionPlugin,
  type TensorWeightFormat,
} from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import {
  AdapterModule,
  crossEntropy,
  dequantizedValues,
  loraAdapter,
  modelParameters,
  randomInferenceWeights,
  YuanModel,
} from '../src/index.js';

const lfa = lfaAttention as unknown as TensorAttentionPlugin<unknown>;
const cfg = resolveConfig({
  model: { vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, ffnSize: 24, maxPositions: 32 },
  attention: { name: 'lfa', options: {} },
});
const specs = modelParameters(cfg, lfa);
// 4 × 8 = 32 rows per product: from 32 rows the GPTQ kernel multiplies exact fp32 activations (dequantized tiles and
// BLAS), as a training batch of B·T ≥ 32 tokens does; below, it quantizes them (the decode path; its error bound is
// tested in @yuan/tensor-native)
const ids = [
  [3, 7, 1, 9, 4, 4, 12, 0],
  [5, 2, 8, 8, 30, 1, 6, 2],
  [11, 0, 19, 3, 3, 27, 8, 14],
  [2, 33, 5, 16, 9, 21, 1, 38],
];
const targets = ids.map((r) => r.map((t) => (t * 7 + 3) % 40));

/** The loss and the adapter's gradients (by name) of one batch through `model` with `adapter` attached. */
function adapterGrads(model: YuanModel, adapter: AdapterModule): { loss: number; grads: Map<string, Float32Array> } {
  model.attachAdapter({ layer: adapter.layer, dispose() {} });
  const x = tf.tensor2d(ids, [4, 8], 'int32');
  const y = tf.tensor2d(targets, [4, 8], 'int32');
  const vars = [...adapter.params.values()];
  const r = tf.variableGrads(() => crossEntropy(model.forward(x).logits, y) as tf.Scalar, vars);
  const loss = r.value.dataSync()[0];
  const names = new Map(vars.map((v, i) => [v.name, [...adapter.params.keys()][i]]));
  const grads = new Map(Object.entries(r.grads).map(([k, g]) => [names.get(k)!, g.dataSync() as Float32Array]));
  tf.dispose([x, y, r.value, r.grads]);
  return { loss, grads };
}

const CASES: [string, TensorWeightFormat][] = [
  ['bf16', bf16Format],
  ['int8', int8Format],
  ['int4', int4Format],
];
// with the native kernels the products' summation order differs
const LOSS_TOL = { kernels: 1e-4, dequantized: 1e-5 };
const GRAD_TOL = { kernels: 1e-3, dequantized: 1e-4 };

describe('LoRA over a frozen base in a weight format', () => {
  // without the native weight kernels first (they are not loaded until the second round asks for them)
  for (const kernels of [false, true])
    for (const [name, format] of CASES)
      it(`${name} base ${kernels ? 'with the native weight kernels' : 'dequantized per product'}: the adapter's loss and gradients match the float32 base`, async (ctx) => {
        if (kernels) {
          const k = await loadDecodeKernels();
          if (!k.kernels) ctx.skip(`native weight kernels unavailable: ${k.reason}`);
          await initBackend('native');
        } else {
          expect(decodeKernels(), 'the weight kernels must not be loaded yet').toBeUndefined();
          await initBackend('cpu');
        }
        const stored = randomInferenceWeights(cfg, lfa, 7, { format });
        const before = tf.memory().numBytes;
        const packed = YuanModel.fromStoredWeights(cfg, lfa, stored);
        const packedBytes = tf.memory().numBytes - before;
        const fp32 = YuanModel.fromWeights(cfg, lfa, new Map(specs.map((s) => [s.name, dequantizedValues(stored, s)])));
        const fp32Bytes = tf.memory().numBytes - before - packedBytes;
        // the packed linears hold no tensor memory: only the embedding, norms and convolutions are float32 tensors
        expect(packedBytes).toBeLessThan(0.5 * fp32Bytes);
        expect(packed.param('model.layers.0.mlp.up_gate_proj.weight').size).toBe(0);
        await expect(packed.weights()).rejects.toThrow(/packed weights/);
        const options = { rank: 2, targets: 'all-linear' };
        const init = AdapterModule.init(loraAdapter as never, options, specs, 2);
        const rng = new Rng(9); // B is zero at init: random values so that every A gets a gradient
        const values = new Map(
          init.specs.map((s) => [
            s.name,
            Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.3),
          ]),
        );
        init.dispose();
        const adapters = [0, 1].map(() => AdapterModule.fromWeights(loraAdapter as never, options, specs, values));
        const got = adapterGrads(packed, adapters[0]);
        const want = adapterGrads(fp32, adapters[1]);
        expect(Math.abs(got.loss - want.loss) / want.loss, `loss ${got.loss} vs ${want.loss}`).toBeLessThanOrEqual(
          LOSS_TOL[kernels ? 'kernels' : 'dequantized'],
        );
        expect(got.grads.size).toBe(want.grads.size);
        for (const [name, w] of want.grads) {
          const g = got.grads.get(name)!;
          let scale = 0;
          let worst = 0;
          for (let i = 0; i < w.length; i++) {
            scale = Math.max(scale, Math.abs(w[i]));
            worst = Math.max(worst, Math.abs(g[i] - w[i]));
          }
          expect(scale, `${name}: a zero gradient compares trivially`).toBeGreaterThan(0);
          expect(worst / scale, name).toBeLessThanOrEqual(GRAD_TOL[kernels ? 'kernels' : 'dequantized']);
        }
        for (const m of [packed, fp32]) m.dispose();
        for (const a of adapters) a.dispose();
      });
});
