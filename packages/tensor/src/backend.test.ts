import { describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { tf } from './tf.js';

describe('initBackend', () => {
  it('picks the best backend that loads and says why each better one was skipped', async () => {
    const report = await initBackend('');
    expect(['tensorflow-gpu', 'tensorflow', 'native', 'wasm', 'cpu']).toContain(report.name);
    expect(report.attempts.at(-1)).toMatchObject({ name: report.name, ok: true });
    for (const a of report.attempts.slice(0, -1)) expect(a.detail).toMatch(/tfjs-node|native|wasm/);
    expect(tf.getBackend()).toBe(report.name === 'tensorflow-gpu' ? 'tensorflow' : report.name);
  });

  it('honours an explicit backend and rejects unknown names with the list', async () => {
    expect((await initBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    await expect(initBackend('tpu')).rejects.toThrow('unknown backend "tpu" (backends: tensorflow-gpu, tensorflow, native, wasm, cpu)');
  });
});

describe('wasm patches', () => {
  async function onBoth<T>(fn: () => T): Promise<{ cpu: T; wasm: T }> {
    await initBackend('cpu');
    const cpu = fn();
    await initBackend('wasm');
    const wasm = fn();
    await initBackend('cpu');
    return { cpu, wasm };
  }

  it('transposed matMuls give the cpu results', async () => {
    const a = new Float32Array(2 * 5 * 3).map((_, i) => Math.sin(i));
    const b = new Float32Array(2 * 5 * 4).map((_, i) => Math.cos(i));
    const r = await onBoth(() =>
      tf.tidy(() => {
        const x = tf.tensor3d(a, [2, 5, 3]);
        const y = tf.tensor3d(b, [2, 5, 4]);
        const tA = tf.matMul(x, y, true, false).arraySync();
        const tB = tf.matMul(y.transpose([0, 2, 1]), x.transpose([0, 2, 1]), false, true).arraySync();
        return [tA, tB] as number[][][][];
      }),
    );
    expect(r.wasm[0]).toEqual(r.cpu[0].map((m) => m.map((row) => row.map((v) => expect.closeTo(v, 5)))));
    expect(r.wasm[1]).toEqual(r.cpu[1].map((m) => m.map((row) => row.map((v) => expect.closeTo(v, 5)))));
  });

  it('embedding (gather) gradients work on wasm', async () => {
    const r = await onBoth(() =>
      tf.tidy(() => {
        const table = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d([2, 0, 2], 'int32')), tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]))));
        return g(table).arraySync();
      }),
    );
    expect(r.wasm).toEqual([[3, 4], [0, 0], [6, 8]]);
    expect(r.cpu).toEqual(r.wasm);
  });
});
