// Every attention plugin trains the same with the native backend's fused attention kernel as with the op-by-op
// attention (`setFusedAttention(false)`, the path of the other backends), on the same backend: the loss and every
// parameter's gradient of one step, and the losses of a few Adam steps. The sequences are packed documents whose
// RoPE positions restart after each <eod> (YUAN's --reset-position-ids; the attention mask stays plain causal, as in
// YUAN 2.0's pretraining), and long enough (200) to cross the kernel's 128-query tiles.
import { lfaAttention } from '@yuan/attention-lfa';
import { lpaAttention } from '@yuan/attention-lpa';
import { getPreset, resolveConfig } from '@yuan/core';
import { crossEntropy, disposeCache, mhaAttention, YuanModel, type ModelCache } from '@yuan/model';
import { initBackend, recordTape, setFusedAttention, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import { mqaAttention } from 'yuan-attention-mqa';

const skip = await initBackend('native').then(
  () => undefined,
  (e: Error) => `fused attention tests skipped: ${e.message.split('\n')[0]}`,
);
if (skip) console.warn(skip);

const BATCH = 2;
const SEQ = 200;
const EOD = 256;

/** Deterministic pseudo-random values in [0, 1) (an LCG). */
function values(n: number, seed: number): Float64Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
}

/** Packed token rows with an <eod> every ~40 tokens, their next-token targets and positions restarting after each <eod>. */
function packedBatch(): { ids: tf.Tensor2D; targets: tf.Tensor2D; positions: tf.Tensor2D; resets: number } {
  const r = values(BATCH * (SEQ + 1), 3);
  const tokens = Int32Array.from(r, (x) => (x < 0.025 ? EOD : Math.floor(x * 256)));
  const ids = new Int32Array(BATCH * SEQ);
  const targets = new Int32Array(BATCH * SEQ);
  const positions = new Int32Array(BATCH * SEQ);
  let resets = 0;
  for (let b = 0; b < BATCH; b++) {
    let pos = 0;
    for (let i = 0; i < SEQ; i++) {
      ids[b * SEQ + i] = tokens[b * (SEQ + 1) + i];
      targets[b * SEQ + i] = tokens[b * (SEQ + 1) + i + 1];
      if (i > 0 && ids[b * SEQ + i - 1] === EOD) {
        pos = 0;
        resets++;
      }
      positions[b * SEQ + i] = pos++;
    }
  }
  return {
    ids: tf.tensor2d(ids, [BATCH, SEQ], 'int32'),
    targets: tf.tensor2d(targets, [BATCH, SEQ], 'int32'),
    positions: tf.tensor2d(positions, [BATCH, SEQ], 'int32'),
    resets,
  };
}

/** [name, preset, plugin, attention options] of every attention plugin: the built-ins and the example third-party one. */
const PLUGINS: [string, string, TensorAttentionPlugin<never>, Record<string, unknown>][] = [
  ['mha', 'tiny-mha', mhaAttention as never, {}],
  ['lfa', 'tiny-lfa', lfaAttention as never, {}],
  ['lpa', 'tiny-lpa', lpaAttention as never, {}],
  ['mqa (examples/attention-mqa)', 'tiny-mha', mqaAttention as never, { kvHeads: 2 }],
];

/** The loss, every parameter's gradient and then the losses of `steps` Adam steps, with the fused kernel on or off. */
function train(
  preset: string,
  plugin: TensorAttentionPlugin<never>,
  options: Record<string, unknown>,
  fused: boolean,
  steps: number,
) {
  const previous = setFusedAttention(fused);
  try {
    const attention = { name: plugin.name, options };
    const config = resolveConfig(getPreset(preset).config, {
      model: { numLayers: 2, hiddenSize: 64, numHeads: 4, ffnSize: 128 },
      attention,
    });
    const model = YuanModel.init(config, plugin, 17);
    const { ids, targets, positions } = packedBatch();
    const loss = () => crossEntropy(model.forward(ids, { positions }).logits, targets);
    const names = new Map([...model.params].map(([name, v]) => [v.name, name]));
    const first = tf.variableGrads(loss);
    const grads = new Map(Object.entries(first.grads).map(([k, g]) => [names.get(k)!, g.dataSync().slice()]));
    const losses = [first.value.dataSync()[0]];
    tf.dispose([first.value, first.grads]);
    const opt = tf.train.adam(3e-3, 0.9, 0.95, 1e-8);
    let live = 0;
    for (let s = 0; s < steps; s++) {
      if (s === 1) live = tf.memory().numTensors; // after the optimizer made its moments
      const { value, grads: g } = tf.variableGrads(loss);
      opt.applyGradients(g as Parameters<typeof opt.applyGradients>[0]); // Adam declares NamedVariableMap; the grads are a NamedTensorMap
      losses.push(value.dataSync()[0]);
      tf.dispose([value, g]);
    }
    const leaked = tf.memory().numTensors - live;
    opt.dispose();
    model.dispose();
    tf.dispose([ids, targets, positions]);
    return { losses, grads, leaked };
  } finally {
    setFusedAttention(previous);
  }
}

/**
 * Logits of generation with the caches: a prefill of 130 tokens, a chunk of 20 more (20 queries after 130 cached keys)
 * and 4 decode steps (one query against every cached key) under a padding key bias that masks the first 3 keys of row 0
 * (as batched serving masks left padding), with the fused kernel on or off.
 */
function generate(
  preset: string,
  plugin: TensorAttentionPlugin<never>,
  options: Record<string, unknown>,
  fused: boolean,
): Float32Array[] {
  const previous = setFusedAttention(fused);
  try {
    const config = resolveConfig(getPreset(preset).config, {
      model: { numLayers: 2, hiddenSize: 64, numHeads: 4, ffnSize: 128 },
      attention: { name: plugin.name, options },
    });
    const model = YuanModel.init(config, plugin, 23);
    const { ids } = packedBatch();
    const out: Float32Array[] = [];
    let cache: ModelCache | undefined;
    const call = (x: tf.Tensor2D, keyBias?: tf.Tensor4D) => {
      const r = model.forward(x, { cache, useCache: true, keyBias });
      disposeCache(cache, r.cache);
      cache = r.cache;
      out.push((r.logits.dataSync() as Float32Array).slice());
      tf.dispose([x, r.logits, ...(keyBias ? [keyBias] : [])]);
    };
    call(tf.slice(ids, [0, 0], [BATCH, 130]) as tf.Tensor2D);
    call(tf.slice(ids, [0, 130], [BATCH, 20]) as tf.Tensor2D);
    for (let step = 0; step < 4; step++) {
      const keys = cache!.length + 1;
      const bias = new Float32Array(BATCH * keys);
      bias.fill(-1e9, 0, 3);
      call(tf.slice(ids, [0, 150 + step], [BATCH, 1]) as tf.Tensor2D, tf.tensor4d(bias, [BATCH, 1, 1, keys]));
    }
    disposeCache(cache);
    model.dispose();
    ids.dispose();
    return out;
  } finally {
    setFusedAttention(previous);
  }
}

describe.skipIf(skip !== undefined)('fused attention inside every attention plugin (native backend)', () => {
  it('the batch restarts positions at <eod> inside its rows', () => {
    const b = packedBatch();
    expect(b.resets).toBeGreaterThanOrEqual(4);
    tf.dispose([b.ids, b.targets, b.positions]);
  });

  it.each(PLUGINS)(
    '%s: a training step runs the fused kernels (forward and backward), and no softmax; op by op when turned off',
    async (_, preset, plugin, options) => {
      const kernels = async (fused: boolean) => {
        const previous = setFusedAttention(fused);
        try {
          const config = resolveConfig(getPreset(preset).config, {
            model: { numLayers: 2, hiddenSize: 64, numHeads: 4, ffnSize: 128 },
            attention: { name: plugin.name, options },
          });
          const model = YuanModel.init(config, plugin, 17);
          const { ids, targets, positions } = packedBatch();
          const profile = await tf.profile(() => {
            const { value, grads } = tf.variableGrads(() =>
              crossEntropy(model.forward(ids, { positions }).logits, targets),
            );
            tf.dispose([value, grads]);
          });
          model.dispose();
          tf.dispose([ids, targets, positions]);
          return profile.kernels.map((k) => k.name);
        } finally {
          setFusedAttention(previous);
        }
      };
      const fused = await kernels(true);
      expect(fused.filter((n) => n.startsWith('YuanCausalAttention')).sort()).toEqual([
        'YuanCausalAttention',
        'YuanCausalAttention',
        'YuanCausalAttentionGrad',
        'YuanCausalAttentionGrad',
      ]);
      expect(fused).not.toContain('Softmax');
      const ops = await kernels(false);
      expect(ops.filter((n) => n.startsWith('YuanCausalAttention'))).toEqual([]);
      expect(ops).toContain('Softmax');
    },
  );

  it.each(PLUGINS)(
    '%s: loss, every parameter gradient and 5 Adam steps match the op-by-op attention',
    (_, preset, plugin, options) => {
      const op = train(preset, plugin, options, false, 5);
      const fused = train(preset, plugin, options, true, 5);
      expect(fused.leaked, 'tensors left behind by steps 2-5').toBe(0);
      expect(fused.grads.size).toBe(op.grads.size);
      for (const [name, ref] of op.grads) {
        const got = fused.grads.get(name)!;
        let scale = 0;
        for (const x of ref) scale = Math.max(scale, Math.abs(x));
        expect(scale, `${name}: a zero gradient would compare trivially`).toBeGreaterThan(0);
        let worst = 0;
        for (let i = 0; i < ref.length; i++)
          worst = Math.max(worst, Math.abs(got[i] - ref[i]) - 1e-4 * Math.abs(ref[i]));
        expect(
          worst / scale,
          `${name}: largest difference beyond 1e-4 relative, over the gradient's largest magnitude`,
        ).toBeLessThanOrEqual(1e-4);
      }
      expect(op.losses[5]).toBeLessThan(op.losses[0] - 0.1); // it does learn the batch
      fused.losses.forEach((l, i) =>
        expect(
          Math.abs(l - op.losses[i]) / op.losses[i],
          `step ${i}: fused ${l}, op-by-op ${op.losses[i]}`,
        ).toBeLessThanOrEqual(1e-5),
      );
    },
  );

  it.each(PLUGINS)(
    '%s: generation with caches (prefill, a chunk after cached keys, decode steps with a key bias) gives the op-by-op logits',
    (_, preset, plugin, options) => {
      const op = generate(preset, plugin, options, false);
      const fused = generate(preset, plugin, options, true);
      expect(fused.map((l) => l.length)).toEqual(op.map((l) => l.length));
      op.forEach((ref, call) => {
        let worst = 0;
        for (let i = 0; i < ref.length; i++)
          worst = Math.max(worst, Math.abs(fused[call][i] - ref[i]) - 1e-4 * Math.abs(ref[i]));
        expect(worst, `call ${call}: largest logit difference beyond 1e-4 relative`).toBeLessThanOrEqual(1e-4);
      });
    },
  );
  it.each(PLUGINS)(
    '%s: a kept tape (recompute none/selective) backpropagates later through the fused kernel, as variableGrads at once',
    async (_, preset, plugin, options) => {
      const previous = setFusedAttention(true);
      try {
        const config = resolveConfig(getPreset(preset).config, {
          model: { numLayers: 2, hiddenSize: 64, numHeads: 4, ffnSize: 128 },
          attention: { name: plugin.name, options },
        });
        const model = YuanModel.init(config, plugin, 17);
        const { ids, targets, positions } = packedBatch();
        const loss = () => crossEntropy(model.forward(ids, { positions }).logits, targets);
        const vars = [...model.params.values()];
        const paramNames = [...model.params.keys()];
        const ref = tf.variableGrads(loss);
        const kept: number[] = [];
        for (const selective of [false, true]) {
          const before = tf.memory().numTensors;
          let tape: ReturnType<typeof recordTape> | undefined;
          const forward = await tf.profile(() => {
            tape = recordTape(loss, vars, { selective });
          });
          expect(forward.kernels.filter((k) => k.name === 'YuanCausalAttention')).toHaveLength(2);
          kept.push(tape!.keptBytes);
          // another micro-batch's forward and backward in between
          tf.dispose(Object.values(tf.variableGrads(loss)));
          let grads: Array<tf.Tensor | undefined> = [];
          const backward = await tf.profile(() => {
            grads = tape!.backward();
          });
          const names = backward.kernels.map((k) => k.name);
          // the fused kernel's own backward, from what the kept tape saved: no forward again, no softmax
          expect(names.filter((n) => n === 'YuanCausalAttentionGrad')).toHaveLength(2);
          expect(names).not.toContain('YuanCausalAttention');
          expect(names).not.toContain('Softmax');
          expect(tape!.value.dataSync()[0]).toBeCloseTo(ref.value.dataSync()[0], 5);
          for (const [i, v] of vars.entries()) {
            const want = ref.grads[v.name].dataSync();
            const got = grads[i]!.dataSync();
            let scale = 0;
            let worst = 0;
            for (let k = 0; k < want.length; k++) {
              scale = Math.max(scale, Math.abs(want[k]));
              worst = Math.max(worst, Math.abs(got[k] - want[k]));
            }
            expect(worst / scale, `${paramNames[i]} (${selective ? 'selective' : 'none'})`).toBeLessThanOrEqual(1e-5);
          }
          tf.dispose([tape!.value, ...grads.filter((g) => g !== undefined)]);
          tape!.dispose();
          expect(tf.memory().numTensors, 'tensors left by the kept tape').toBe(before);
        }
        // the fused kernel keeps only its output and row log-sum-exp: selective has nothing more to drop
        expect(kept[1]).toBe(kept[0]);
        tf.dispose([ref.value, ...Object.values(ref.grads)]);
        model.dispose();
        tf.dispose([ids, targets, positions]);
      } finally {
        setFusedAttention(previous);
      }
    },
  );
});
