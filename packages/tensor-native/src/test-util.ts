import { expect } from 'vitest';
import { registerNativeBackend, type NativeBackendInfo } from './index.js';
import { tf } from './tf.js';

/** The native backend if its addon is built, else why not (tests skip with that one line). */
export const native: { info?: NativeBackendInfo; skip?: string } = (() => {
  try {
    return { info: registerNativeBackend() };
  } catch (e) {
    const skip = `@yuan/tensor-native tests skipped: ${(e as Error).message}`;
    console.warn(skip);
    return { skip };
  }
})();

/** Deterministic pseudo-random values in [-1, 1) (an LCG, so both backends see identical inputs). */
export function values(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** A float32 tensor of that shape with `values(seed)`. */
export function rand(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
}

/** A tensor's values read back: shape, dtype and a flat copy of the data. */
export interface Values {
  shape: number[];
  dtype: string;
  data: ArrayLike<number>;
}

/** Runs fn on the cpu backend and on the native one (in a tidy that must leave no tensor behind); both results. */
export async function onBoth(fn: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: Values[]; native: Values[] }> {
  const run = async (backend: string): Promise<Values[]> => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => {
      const r = fn();
      return Array.isArray(r) ? r : [r];
    });
    const copies = out.map((t) => ({
      shape: t.shape,
      dtype: t.dtype,
      data: Array.from(t.dataSync() as ArrayLike<number>),
    }));
    tf.dispose(out);
    expect(tf.memory().numTensors).toBe(before);
    return copies;
  };
  const cpu = await run('cpu');
  return { cpu, native: await run('native') };
}

/** Expects the native results to equal the cpu ones in shape and dtype, and in value within atol + rtol·|cpu|. */
export function expectClose(r: { cpu: Values[]; native: Values[] }, rtol = 1e-4, atol = 1e-5): void {
  expect(r.native.length).toBe(r.cpu.length);
  r.cpu.forEach((c, i) => {
    const n = r.native[i];
    expect(n.shape).toEqual(c.shape);
    expect(n.dtype).toBe(c.dtype);
    let worst = 0;
    for (let j = 0; j < c.data.length; j++) {
      const a = n.data[j];
      const b = c.data[j];
      if (Number.isNaN(b)) expect(a).toBeNaN();
      else worst = Math.max(worst, Math.abs(a - b) - (atol + rtol * Math.abs(b)));
    }
    expect(worst, `output ${i}: largest excess over the tolerance`).toBeLessThanOrEqual(0);
  });
}
