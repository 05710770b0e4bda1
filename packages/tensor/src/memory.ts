import { tf } from './tf.js';

/** A backend that can hand out a tensor's stored values without copying them (tensor-native's pooled backend). */
interface StoringBackend {
  storedValues(dataId: object): unknown;
}

/**
 * Writes the values of the float32 tensor `t` (× `scale`, default 1) into `dst` from element `offset`: one copy out of
 * the backend's storage where the backend can (tensor-native), else from `dataSync()` (which on the native backend is
 * itself a copy of a pooled array, so this saves an allocation of `t.size` floats per call — what gradient flattening
 * does for every parameter every micro-batch). Errors: a non-float32 tensor or one that does not fit is a RangeError.
 */
export function copyTensorInto(t: tf.Tensor, dst: Float32Array, offset: number, scale = 1): void {
  if (t.dtype !== 'float32') throw new RangeError(`copyTensorInto: tensor is ${t.dtype}, not float32`);
  if (!Number.isInteger(offset) || offset < 0 || offset + t.size > dst.length)
    throw new RangeError(`copyTensorInto: ${t.size} values do not fit at ${offset} in ${dst.length}`);
  const eng = tf.engine() as unknown as EngineInternals;
  const backend = eng.state.tensorInfo.get(t.dataId)?.backend as Partial<StoringBackend> | undefined;
  const stored = typeof backend?.storedValues === 'function' ? backend.storedValues(t.dataId) : undefined;
  const values = stored instanceof Float32Array ? stored : (t.dataSync() as Float32Array);
  if (scale === 1) dst.set(values, offset);
  else for (let k = 0; k < values.length; k++) dst[offset + k] = values[k] * scale;
}

/** Number of live tensors (for leak checks: it must not grow across steps). */
export function liveTensorCount(): number {
  return tf.memory().numTensors;
}

interface EngineInternals {
  trackTensor(a: tf.Tensor, backend: unknown): void;
  removeDataId(dataId: object, backend: unknown): void;
  state: { tensorInfo: WeakMap<object, { bytes: number; backend: unknown }> };
}

/**
 * Bytes of distinct data buffers allocated since `start()` and still alive (`live`), and their high-water mark while
 * sampling (`peak`). Unlike `tf.memory().numBytes` it counts a buffer once however many tensors (views, reshapes,
 * saved copies) share it, so it measures what the memory planner predicts. Installs hooks on the TensorFlow.js engine
 * until `stop()`; buffers that existed before `start()` are not counted.
 */
export class BufferMeter {
  /** Bytes allocated since start and not yet freed. */
  live = 0;
  /** Largest `live` seen while `sampling` was true (bytes). */
  peak = 0;
  /** Whether allocations raise `peak` now. */
  sampling = false;
  private readonly created = new WeakMap<object, number>();
  private restore?: () => void;

  /** Installs the hooks and zeroes the counters. */
  start(): this {
    this.stop();
    const eng = tf.engine() as unknown as EngineInternals;
    const track = eng.trackTensor.bind(eng);
    const remove = eng.removeDataId.bind(eng);
    this.live = 0;
    this.peak = 0;
    eng.trackTensor = (a, backend) => {
      const fresh = !eng.state.tensorInfo.has(a.dataId);
      track(a, backend);
      if (fresh) {
        const bytes = eng.state.tensorInfo.get(a.dataId)?.bytes ?? 0;
        this.created.set(a.dataId, bytes);
        this.live += bytes;
        if (this.sampling) this.peak = Math.max(this.peak, this.live);
      }
    };
    eng.removeDataId = (dataId, backend) => {
      const info = eng.state.tensorInfo.get(dataId);
      const bytes = this.created.get(dataId);
      if (info && info.backend === backend && bytes !== undefined) {
        this.live -= bytes;
        this.created.delete(dataId);
      }
      remove(dataId, backend);
    };
    this.restore = () => {
      eng.trackTensor = track;
      eng.removeDataId = remove;
    };
    return this;
  }

  /** Removes the hooks. */
  stop(): void {
    this.restore?.();
    this.restore = undefined;
  }
}
