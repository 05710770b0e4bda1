import { countParameters, Rng, type AttentionSpec } from '@yuan/core';
import { initBackend, initValues, linear, ropeAttention, ropeTables, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { lpaAttention } from './index.js';

const spec: AttentionSpec = {
  hiddenSize: 32,
  numHeads: 4,
  headDim: 8,
  layerIndex: 0,
  numLayers: 2,
  ropeBase: 10000,
  rmsNormEps: 1e-6,
  initStd: 0.02,
};

function build(rank?: number) {
  const options = lpaAttention.validate!({ ...(rank ? { rank } : {}) });
  const specs = lpaAttention.parameters(spec, options);
  const rng = new Rng(4);
  const params = new Map(
    specs.map((s) => [
      s.name,
      tf.tensor(
        initValues(
          s.shape.reduce((a, b) => a * b, 1),
          s.init,
          rng,
        ),
        s.shape,
      ),
    ]),
  );
  return { specs, params, layer: lpaAttention.create(spec, options, (n) => params.get(n)!) };
}

function ctxFor(t: number, start = 0) {
  const positions = tf.range(start, start + t, 1, 'int32').expandDims(0) as tf.Tensor2D;
  return ropeTables(positions, spec.headDim, spec.ropeBase);
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('lpa attention', () => {
  it('has rank-r factors for q, k, v and o (default rank hidden/4)', () => {
    const { specs } = build();
    expect(specs.map((s) => `${s.name}:${s.shape}`)).toEqual([
      'q_proj.down.weight:8,32',
      'q_proj.up.weight:32,8',
      'k_proj.down.weight:8,32',
      'k_proj.up.weight:32,8',
      'v_proj.down.weight:8,32',
      'v_proj.up.weight:32,8',
      'o_proj.down.weight:8,32',
      'o_proj.up.weight:32,8',
    ]);
    expect(countParameters(build(4).specs)).toBe(4 * 2 * 32 * 4);
  });

  it('equals dense attention whose projections are the products up·down', () => {
    const { params, layer } = build(6);
    const x = tf.randomNormal([2, 5, 32], 0, 1, 'float32', 1) as tf.Tensor3D;
    const { cos, sin } = ctxFor(5);
    const got = layer.forward(x, {
      cos: tf.tile(cos, [2, 1, 1, 1]) as tf.Tensor4D,
      sin: tf.tile(sin, [2, 1, 1, 1]) as tf.Tensor4D,
      useCache: false,
    }).out;
    const dense = (p: string) => tf.matMul(params.get(`${p}.up.weight`)!, params.get(`${p}.down.weight`)!);
    const heads = (t: tf.Tensor) => tf.reshape(t, [2, 5, 4, 8]) as tf.Tensor4D;
    const ref = ropeAttention(
      heads(linear(x, dense('q_proj'))),
      heads(linear(x, dense('k_proj'))),
      heads(linear(x, dense('v_proj'))),
      {
        cos: tf.tile(cos, [2, 1, 1, 1]) as tf.Tensor4D,
        sin: tf.tile(sin, [2, 1, 1, 1]) as tf.Tensor4D,
        useCache: false,
      },
    );
    const want = linear(ref.out, dense('o_proj'));
    expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-6);
    expect(tf.max(tf.abs(want)).dataSync()[0]).toBeGreaterThan(1e-5);
  });

  it('gives the same outputs token by token with a cache as on the whole sequence', () => {
    const { layer } = build();
    const x = tf.randomNormal([1, 4, 32], 0, 1, 'float32', 2) as tf.Tensor3D;
    const full = ctxFor(4);
    const whole = layer.forward(x, { ...full, useCache: false }).out.arraySync()[0];
    let cache;
    const steps: number[][] = [];
    for (let t = 0; t < 4; t++) {
      const r = layer.forward(tf.slice(x, [0, t, 0], [1, 1, 32]) as tf.Tensor3D, {
        ...ctxFor(1, t),
        cache,
        useCache: true,
      });
      cache = r.cache;
      steps.push(r.out.arraySync()[0][0]);
    }
    steps.forEach((row, t) => row.forEach((v, i) => expect(v).toBeCloseTo(whole[t][i], 5)));
  });

  it('rejects a rank that is not a positive integer or exceeds the hidden size', () => {
    expect(() => lpaAttention.validate!({ rank: 2.5 })).toThrow(
      /attention\.options\.rank = 2\.5; expected an integer >= 1/,
    );
    expect(() => lpaAttention.validate!({ kernel: 3 })).toThrow(/unknown field attention\.options\.kernel/);
    expect(() => lpaAttention.parameters(spec, { rank: 64 })).toThrow(/rank = 64 exceeds model\.hiddenSize = 32/);
  });
});
