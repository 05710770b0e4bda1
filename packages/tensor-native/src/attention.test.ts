import { describe, expect, it } from 'vitest';
import { causalAttention as fused } from './index.js';
import { expectClose, native, onBoth, rand, type Values } from './test-util.js';
import { tf } from './tf.js';

// The fused attention kernels on native against the op-by-op attention (the composite @yuan/tensor runs on the other
// backends: scores, scale, key bias, -1e9 causal mask, softmax, weighted sum), forward and every gradient.

/** The op-by-op reference: q [B, A, Sq, d], k and v [B, A, Sk, d], query i at position Sk − Sq + i. */
function reference(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number, keyBias?: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [sq, sk] = [q.shape[2], k.shape[2]];
    const mask = new Float32Array(sq * sk);
    for (let i = 0; i < sq; i++) for (let j = i + sk - sq + 1; j < sk; j++) mask[i * sk + j] = -1e9;
    const raw = tf.mul(tf.matMul(q, k, false, true), scale);
    const scores = tf.add(keyBias ? tf.add(raw, keyBias) : raw, tf.tensor2d(mask, [sq, sk]));
    return tf.matMul(tf.softmax(scores), v) as tf.Tensor4D;
  });
}

interface Case {
  b: number;
  a: number;
  sq: number;
  sk: number;
  d: number;
  /** Padding bias on the first `pad` keys of batch row 0 (left padding, as serving uses it); every query must see a key after them (a row that sees only padding is undefined). */
  pad?: number;
}

/** Inputs of a case: q, k, v, the output weights w (loss = Σ o·w) and the key bias when the case has one. */
function inputs(c: Case): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D; w: tf.Tensor4D; bias?: tf.Tensor4D } {
  const q = tf.mul(rand([c.b, c.a, c.sq, c.d], 1), 2) as tf.Tensor4D;
  const k = tf.mul(rand([c.b, c.a, c.sk, c.d], 2), 2) as tf.Tensor4D;
  const v = rand([c.b, c.a, c.sk, c.d], 3) as tf.Tensor4D;
  const w = rand([c.b, c.a, c.sq, c.d], 4) as tf.Tensor4D;
  if (c.pad === undefined) return { q, k, v, w };
  const bias = new Float32Array(c.b * c.sk);
  for (let j = 0; j < c.pad; j++) bias[j] = -1e9;
  // a soft, non-constant bias on the other rows, so that its gradient is not trivially zero
  for (let j = c.sk; j < bias.length; j++) bias[j] = 0.25 * Math.sin(j);
  return { q, k, v, w, bias: tf.tensor4d(bias, [c.b, 1, 1, c.sk]) };
}

/** Output and gradients (q, k, v, and the bias when given) of Σ attention(q, k, v)·w, fused on native, else op-by-op. */
function run(c: Case, useFused: boolean): tf.Tensor[] {
  const { q, k, v, w, bias } = inputs(c);
  const scale = 1 / Math.sqrt(c.d);
  const attend = (...t: tf.Tensor[]) =>
    useFused
      ? fused(t[0] as tf.Tensor4D, t[1] as tf.Tensor4D, t[2] as tf.Tensor4D, {
          scale,
          keyBias: t[3] as tf.Tensor4D | undefined,
        })
      : reference(
          t[0] as tf.Tensor4D,
          t[1] as tf.Tensor4D,
          t[2] as tf.Tensor4D,
          scale,
          t[3] as tf.Tensor4D | undefined,
        );
  const xs = bias ? [q, k, v, bias] : [q, k, v];
  const { value, grads } = tf.valueAndGrads((...t: tf.Tensor[]) => tf.sum(tf.mul(attend(...t), w)))(xs);
  value.dispose();
  return [attend(...xs), ...grads];
}

const onNative = () => tf.getBackend() === 'native';

// uneven tiles: the kernel tiles 128 queries x 128 keys
const SMALL: [string, Case][] = [
  ['S 1', { b: 1, a: 1, sq: 1, sk: 1, d: 4 }],
  ['S 5, 3 heads, batch 2', { b: 2, a: 3, sq: 5, sk: 5, d: 8 }],
  ['S 127 (one partial tile)', { b: 1, a: 2, sq: 127, sk: 127, d: 16 }],
  ['S 129 (a tile and one row)', { b: 1, a: 1, sq: 129, sk: 129, d: 8 }],
  ['S 300 (two tiles and a tail), d 24', { b: 2, a: 2, sq: 300, sk: 300, d: 24 }],
  ['decode: 1 query against 37 cached keys', { b: 2, a: 2, sq: 1, sk: 37, d: 8 }],
  ['a chunk of 70 queries after 130 cached keys', { b: 1, a: 2, sq: 70, sk: 200, d: 8 }],
  ['decode with a padding key bias', { b: 2, a: 2, sq: 1, sk: 9, d: 8, pad: 3 }],
  ['70 queries after 70 cached keys with a padding key bias', { b: 2, a: 3, sq: 70, sk: 140, d: 8, pad: 5 }],
  ['head dim 128', { b: 1, a: 2, sq: 200, sk: 200, d: 128 }],
];

describe.skipIf(!native.info)('fused causal attention', () => {
  it.each(SMALL)('%s: output and gradients match the op-by-op attention on cpu', async (_, c) => {
    const r = await onBoth(() => run(c, onNative()));
    expect(r.native.length).toBe(c.pad === undefined ? 4 : 5);
    expectClose(r, 1e-4, 1e-5);
  });

  // Long sequences against the op-by-op attention on the native backend (its kernels are tested against cpu in
  // kernels.test.ts): one head (the backward splits its key tiles between threads) and 8 heads (split by head).
  it.each([
    ['S 4096, one head', { b: 1, a: 1, sq: 4096, sk: 4096, d: 16 }],
    ['S 1000, 8 heads', { b: 1, a: 8, sq: 1000, sk: 1000, d: 32 }],
  ] as [string, Case][])('%s: output and gradients match the op-by-op attention on native', async (_, c) => {
    await tf.setBackend('native');
    const read = (ts: tf.Tensor[]): Values[] => {
      const out = ts.map((t) => ({ shape: t.shape, dtype: t.dtype, data: t.dataSync() }));
      tf.dispose(ts);
      return out;
    };
    const before = tf.memory().numTensors;
    const f = read(tf.tidy(() => run(c, true)));
    const ref = read(tf.tidy(() => run(c, false)));
    expect(tf.memory().numTensors).toBe(before);
    expectClose({ cpu: ref, native: f }, 1e-4, 2e-5);
  });

  it('runs as one kernel forward and one backward, and never holds an [S, S] buffer', async () => {
    await tf.setBackend('native');
    const c: Case = { b: 1, a: 1, sq: 2048, sk: 2048, d: 16 };
    const names: string[] = [];
    const profile = await tf.profile(() => tf.tidy(() => run(c, true)));
    for (const k of profile.kernels) names.push(k.name);
    expect(names.filter((n) => n.startsWith('YuanCausalAttention')).sort()).toEqual([
      'YuanCausalAttention',
      'YuanCausalAttention',
      'YuanCausalAttentionGrad',
    ]);
    expect(names).not.toContain('Softmax');
    // inputs, w, outputs and gradients are [1, 1, 2048, 16] (128 KiB each); one score matrix alone would be 16 MiB
    expect(profile.peakBytes).toBeLessThan(4 * 2 ** 20);
    const ref = await tf.profile(() => tf.tidy(() => run(c, false)));
    expect(ref.peakBytes).toBeGreaterThan(16 * 2 ** 20);
    tf.dispose([...(profile.result as tf.Tensor[]), ...(ref.result as tf.Tensor[])]);
  });

  it('rejects inputs that do not fit with one line naming them', async () => {
    await tf.setBackend('native');
    const q = tf.zeros([1, 2, 5, 8]) as tf.Tensor4D;
    const k = tf.zeros([1, 2, 4, 8]) as tf.Tensor4D;
    const k2 = tf.zeros([1, 3, 5, 8]) as tf.Tensor4D;
    expect(() => fused(q, k, k, { scale: 1 })).toThrow(/^causalAttention: q has 5 positions but k only 4/);
    expect(() => fused(q, k2, k2, { scale: 1 })).toThrow(/^causalAttention: k and v must be \[1, 2, Sk, 8\]/);
    expect(() => fused(q, q, q, { scale: 1, keyBias: tf.zeros([1, 5]) as unknown as tf.Tensor4D })).toThrow(
      /keyBias must be \[1, 1, 1, 5\]/,
    );
    tf.dispose([q, k, k2]);
  });
});
