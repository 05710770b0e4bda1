import type { DataType, TensorInfo, backend_util } from '@tensorflow/tfjs';
import { totalmem } from 'node:os';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

type DataId = TensorInfo['dataId'];

/**
 * Most bytes kept for reuse; beyond this, freed outputs are left to the garbage collector. `YUAN_NATIVE_POOL_MB`, default
 * 1 GiB or an eighth of the memory, whichever is less (a train step of tiny-lfa at 8 x 128 tokens recycles about 400 MiB).
 */
const POOL_LIMIT = (Number(process.env.YUAN_NATIVE_POOL_MB) || Math.min(1024, totalmem() / 8 / 2 ** 20)) * 2 ** 20;

/**
 * The cpu backend's storage, plus a pool of the Float32Arrays that native kernels write: a tensor's array goes back to
 * the pool when the tensor is released and serves the next output of that length, which avoids the allocation, page
 * faults and garbage collection a fresh array costs. Only arrays that back exactly one tensor are pooled; one that
 * a cpu kernel aliases (a subarray view, or the same array under a second tensor) is never reused, and reads return
 * copies, so no array handed out to user code is ever overwritten.
 */
export class PooledCpuBackend extends MathBackendCPU {
  private readonly pool = new Map<number, Float32Array[]>();
  private pooledBytes = 0;
  /** Buffers from `alloc` not yet registered as a tensor's values. */
  private readonly fresh = new WeakSet<object>();
  /** Buffers that back exactly one live tensor and may be reused once it is released. */
  private readonly owned = new WeakSet<object>();

  constructor() {
    super();
    // MathBackendCPU prints a "use tfjs-node" hint on first use; this backend is the native one.
    Object.assign(this, { firstUse: false });
  }

  /** A Float32Array of n elements for a kernel output; its contents are arbitrary unless `zero`. */
  alloc(n: number, zero = false): Float32Array {
    const reused = this.pool.get(n)?.pop();
    let out: Float32Array;
    if (reused) {
      this.pooledBytes -= reused.byteLength;
      out = zero ? reused.fill(0) : reused;
    } else {
      out = new Float32Array(n);
    }
    this.fresh.add(out.buffer);
    return out;
  }

  private claim(values: unknown): void {
    if (!ArrayBuffer.isView(values)) return;
    const buffer = values.buffer;
    const whole = values.byteOffset === 0 && values.byteLength === buffer.byteLength;
    if (whole && this.fresh.has(buffer)) {
      this.fresh.delete(buffer);
      this.owned.add(buffer);
    } else {
      this.fresh.delete(buffer);
      this.owned.delete(buffer);
    }
  }

  // Every tensor's values arrive here (MathBackendCPU.makeTensorInfo calls write as well).
  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    this.claim(values);
    return super.write(values, shape, dtype);
  }

  override disposeData(dataId: DataId, force?: boolean): boolean {
    const values = this.data.get(dataId)?.values;
    const released = super.disposeData(dataId, force);
    if (released && values instanceof Float32Array && this.owned.has(values.buffer)) {
      this.owned.delete(values.buffer);
      if (this.pooledBytes + values.byteLength <= POOL_LIMIT) {
        const list = this.pool.get(values.length) ?? [];
        list.push(values);
        this.pool.set(values.length, list);
        this.pooledBytes += values.byteLength;
      }
    }
    return released;
  }

  private copyIfOwned(values: backend_util.BackendValues): backend_util.BackendValues {
    return values instanceof Float32Array && this.owned.has(values.buffer) ? values.slice() : values;
  }

  /**
   * The values of `dataId` as stored: a pooled array itself, not the copy `readSync` makes. Only for a caller that
   * copies them at once and keeps no reference (`copyTensorInto` of @yuan/tensor); the array may be reused later.
   */
  storedValues(dataId: DataId): backend_util.BackendValues {
    return super.readSync(dataId);
  }

  override readSync(dataId: DataId): backend_util.BackendValues {
    return this.copyIfOwned(super.readSync(dataId));
  }

  override async read(dataId: DataId): Promise<backend_util.BackendValues> {
    return this.copyIfOwned(await super.read(dataId));
  }

  override dispose(): void {
    this.pool.clear();
    this.pooledBytes = 0;
    super.dispose();
  }
}
