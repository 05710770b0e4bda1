import { PluginRegistry } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { initBackend, type BackendPlugin } from './backend.js';
import { plugins } from './index.js';
import { tf } from './tf.js';

describe('initBackend', () => {
  it('picks the highest-priority backend that loads and says why each higher one was skipped', async () => {
    const report = await initBackend('');
    expect(['tensorflow-gpu', 'tensorflow', 'native', 'wasm', 'cpu']).toContain(report.name);
    expect(report.attempts.at(-1)).toMatchObject({ name: report.name, ok: true });
    for (const a of report.attempts.slice(0, -1)) expect(a.detail).toMatch(/tfjs-node|native|wasm/);
    expect(report.attempts.map((a) => a.priority)).toEqual(
      [...report.attempts.map((a) => a.priority)].sort((a, b) => b - a),
    );
    // tfjs's own priorities for the backends it defines; native registers 2.5 where it is installed
    expect(Object.fromEntries(report.registered.map((b) => [b.name, b.priority]))).toMatchObject({
      'tensorflow-gpu': 4,
      tensorflow: 3,
      wasm: 2,
      cpu: 1,
    });
    expect(tf.getBackend()).toBe(report.name === 'tensorflow-gpu' ? 'tensorflow' : report.name);
  });

  it('honours an explicit backend and rejects unknown names with the list', async () => {
    expect((await initBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const names = plugins.map((p) => p.name);
    await expect(initBackend('tpu')).rejects.toThrow(`unknown backend "tpu" (backends: ${names.join(', ')})`);
  });

  it('backends are plugins: a registered one with a higher priority wins, one that fails is skipped with its reason, and only the registry given is asked', async () => {
    const activated: string[] = [];
    const backend = (name: string, priority: number, fail?: string): BackendPlugin => ({
      kind: 'backend',
      name,
      description: `test backend ${name}`,
      defaults: {},
      priority,
      async activate() {
        activated.push(name);
        if (fail) throw new Error(fail);
        await tf.setBackend('cpu'); // the cpu backend under another name
        return { threads: 7 };
      },
    });
    const registry = new PluginRegistry()
      .register(backend('slow', 0.5))
      .register(backend('broken', 9, 'no such device'))
      .register(backend('fast', 8))
      .freeze();
    const chosen = await initBackend('', registry);
    expect([chosen.name, chosen.threads, chosen.reason]).toEqual([
      'fast',
      7,
      'highest priority that loads: test backend fast',
    ]);
    expect(chosen.attempts).toEqual([
      { name: 'broken', priority: 9, ok: false, detail: 'no such device' },
      { name: 'fast', priority: 8, ok: true, detail: 'test backend fast' },
    ]);
    expect(chosen.registered.map((b) => [b.name, b.priority])).toEqual([
      ['broken', 9],
      ['fast', 8],
      ['slow', 0.5],
    ]);
    expect((await initBackend('slow', registry)).reason).toBe('requested (test backend slow)');
    await expect(initBackend('broken', registry)).rejects.toThrow('backend "broken" is not available: no such device');
    await expect(initBackend('cpu', registry)).rejects.toThrow('unknown backend "cpu" (backends: broken, fast, slow)');
    expect(activated).toEqual(['broken', 'fast', 'slow', 'broken']);
    expect((await initBackend('cpu')).name).toBe('cpu');
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
        const g = tf.grad((t: tf.Tensor) =>
          tf.sum(tf.mul(tf.gather(t, tf.tensor1d([2, 0, 2], 'int32')), tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]))),
        );
        return g(table).arraySync();
      }),
    );
    expect(r.wasm).toEqual([
      [3, 4],
      [0, 0],
      [6, 8],
    ]);
    expect(r.cpu).toEqual(r.wasm);
  });
});
