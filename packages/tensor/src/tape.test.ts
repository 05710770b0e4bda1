import { describe, expect, it } from 'vitest';
import { Rng } from '@yuan/core';
import { causalAttention, linear, rmsNorm } from './nn.js';
import { recordTape } from './tape.js';
import { tf } from './tf.js';

function rand(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

/** A small block: RMSNorm, a projection, the op-by-op attention core, a residual; x [1, 6, 8], two heads. */
function block(x: tf.Tensor, w: tf.Tensor, g: tf.Tensor): tf.Tensor {
  const h = linear(rmsNorm(x, g, 1e-6), w);
  const q = tf.transpose(tf.reshape(h, [1, 6, 2, 4]), [0, 2, 1, 3]) as tf.Tensor4D;
  const o = causalAttention(q, tf.mul(q, 0.5) as tf.Tensor4D, q);
  return tf.add(x, tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [1, 6, 8]));
}

function expectClose(a: tf.Tensor | undefined, b: tf.Tensor): void {
  expect(a).toBeDefined();
  const [x, y] = [a!.dataSync(), b.dataSync()];
  expect(x.length).toBe(y.length);
  for (let i = 0; i < x.length; i++) expect(x[i]).toBeCloseTo(y[i], 5);
}

describe('recordTape / KeptTape', () => {
  const x = rand([1, 6, 8], 1);
  const w = tf.variable(rand([8, 8], 2));
  const g = tf.variable(tf.add(rand([8], 3), 1));
  const dy = rand([1, 6, 8], 4);
  const reference = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => block(a, b, c))([x, w, g], dy);

  for (const selective of [false, true]) {
    it(`backpropagates later what tf.grads gives at once (${selective ? 'selective' : 'none'}), after other work`, () => {
      const before = tf.memory().numTensors;
      const tape = recordTape(() => block(x, w, g), [x, w, g], { selective });
      expect(tape.keptBytes).toBeGreaterThan(0);
      // other forwards and backwards in between (another micro-batch's)
      tf.tidy(() => {
        tf.grads((a: tf.Tensor) => block(a, w, g))([tf.mul(x, 2)]);
      });
      const grads = tape.backward(dy);
      for (const [i, r] of reference.entries()) expectClose(grads[i], r);
      tf.dispose([tape.value, ...grads.filter((t) => t !== undefined)]);
      tape.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('selective recompute keeps less than none with the op-by-op attention core', () => {
    const none = recordTape(() => block(x, w, g), [x, w, g]);
    const selective = recordTape(() => block(x, w, g), [x, w, g], { selective: true });
    expect(selective.keptBytes).toBeLessThan(none.keptBytes);
    for (const t of [none, selective]) {
      t.value.dispose();
      t.dispose();
    }
  });

  it('defers the weight gradients to a second part (input gradient first)', () => {
    const before = tf.memory().numTensors;
    const tape = recordTape(() => block(x, w, g), [x, w, g]);
    const first = tape.backward(dy, { defer: [1, 2] });
    expect(first[1]).toBeUndefined();
    expectClose(first[0], reference[0]);
    const rest = tape.backwardDeferred();
    expect(rest[0]).toBeUndefined();
    expectClose(rest[1], reference[1]);
    expectClose(rest[2], reference[2]);
    tf.dispose([tape.value, first[0]!, rest[1]!, rest[2]!]);
    tape.dispose();
    expect(dy.isDisposed).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a scalar value starts from ones; a second backward is an error; a dropped tape frees what it kept', () => {
    const before = tf.memory().numTensors;
    const tape = recordTape(() => tf.sum(tf.square(block(x, w, g))), [w]);
    const [dw] = tape.backward();
    const [ref] = tf.grads((b: tf.Tensor) => tf.sum(tf.square(block(x, b, g))))([w]);
    expectClose(dw, ref);
    expect(() => tape.backward()).toThrow(/already backpropagated/);
    tf.dispose([tape.value, dw!, ref]);
    const dropped = recordTape(() => block(x, w, g), [x, w, g]);
    dropped.value.dispose();
    dropped.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("keeps no frozen linear's input: a LoRA-style branch over frozen weights keeps only what dx, dA and dB read", () => {
    // y = (x·W1ᵀ)·W2ᵀ + (x·Aᵀ)·Bᵀ with W1 [16, 8], W2 [8, 16] frozen (not recorded xs) and A [2, 8], B [8, 2] trained:
    // the backward reads W1, W2 (for dx), x (for dA), x·Aᵀ (for dB), A and B — never h = x·W1ᵀ, which only dW2 reads
    const x2 = rand([6, 8], 5);
    const w1 = rand([16, 8], 6);
    const w2 = rand([8, 16], 7);
    const a = rand([2, 8], 8);
    const b = rand([8, 2], 9);
    const dy2 = rand([6, 8], 10);
    const f = (xi: tf.Tensor, ai: tf.Tensor, bi: tf.Tensor) =>
      tf.add(linear(linear(xi, w1), w2), tf.reshape(linear(linear(xi, ai), bi), [6, 8]));
    const reference2 = tf.grads(f)([x2, a, b], dy2);
    const bytes = (...ts: tf.Tensor[]) => ts.reduce((n, t) => n + t.size * 4, 0);
    const bound = bytes(w1, w2, x2, a, b) + 6 * 2 * 4; // + x·Aᵀ [6, 2]
    const before = tf.memory().numTensors;
    const pruned = recordTape(() => f(x2, a, b), [x2, a, b], { prune: true });
    expect(pruned.keptBytes).toBeLessThanOrEqual(bound);
    const grads = pruned.backward(dy2);
    for (const [i, r] of reference2.entries()) expectClose(grads[i], r);
    tf.dispose([pruned.value, ...grads.filter((t): t is tf.Tensor => t !== undefined)]);
    expect(tf.memory().numTensors).toBe(before);
    // what TensorFlow.js saves holds h [6, 16] (and shape-only inputs) besides
    const whole = recordTape(() => f(x2, a, b), [x2, a, b]);
    expect(whole.keptBytes).toBeGreaterThanOrEqual(bound + 6 * 16 * 4);
    whole.value.dispose();
    whole.dispose();
    tf.dispose([x2, w1, w2, a, b, dy2, ...reference2]);
  });
});
