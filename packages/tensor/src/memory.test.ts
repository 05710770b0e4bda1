import { afterAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from './backend.js';
import { copyTensorInto } from './memory.js';
import { tf } from './tf.js';

describe('copyTensorInto', () => {
  afterAll(() => tf.setBackend('cpu'));

  it.each(['cpu', 'native'])('on %s: the values at an offset, scaled, and one-line errors', async (name) => {
    const report = await initBackend(name).catch((e: Error) => e);
    if (report instanceof Error) {
      // the native addon is optional (built by the install step where OpenBLAS is present)
      expect(name).toBe('native');
      return;
    }
    // a tensor whose array a native kernel wrote (pooled on the native backend) and one made from values
    const a = tf.add(tf.tensor([1, 2, 3, 4], [2, 2]), tf.scalar(1));
    const b = tf.tensor([5, 6]);
    const dst = new Float32Array(8).fill(-1);
    const backend = tf.backend() as unknown as { readSync: (id: object) => unknown };
    const read = vi.spyOn(backend, 'readSync');
    copyTensorInto(a, dst, 1);
    copyTensorInto(b, dst, 5, 0.5);
    expect([...dst]).toEqual([-1, 2, 3, 4, 5, 2.5, 3, -1]);
    // the native backend copies out of its own storage: no readSync (which copies a pooled array first)
    if (name === 'native') expect(read).not.toHaveBeenCalled();
    read.mockRestore();
    expect(() => copyTensorInto(a, dst, 5)).toThrow('copyTensorInto: 4 values do not fit at 5 in 8');
    const ids = tf.tensor([1, 2], [2], 'int32');
    expect(() => copyTensorInto(ids, dst, 0)).toThrow('copyTensorInto: tensor is int32, not float32');
    tf.dispose([a, b, ids]);
  });
});
