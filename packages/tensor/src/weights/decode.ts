import type { AttentionSpec } from '@yuan/core';
import type { TensorAttentionPlugin } from '../attention.js';
import type { StoredWeight } from './formats.js';
import type { DecodeKernels } from './kernels.js';

/** One row of a decode call: which sequence it belongs to (its per-layer state) and its absolute position. */
export interface DecodeRow {
  /** The sequence's state of this layer (from the layer's `newState`). */
  state: unknown;
  position: number;
}

/** The weights a decoding attention layer reads, by name relative to `self_attn.` (Hugging Face part names). */
export interface DecodeWeights {
  /** A linear weight [out, in] in its stored format; conv weights [out, in, K, 1] come as [out, in·K]. */
  linear(name: string): StoredWeight;
  /** A 1-D parameter (norm weights, biases) as float32. */
  vector(name: string): Float32Array;
}

/** An attention layer that decodes on plain arrays with the native kernels (no tfjs). */
export interface AttentionDecodeLayer {
  /** A fresh per-sequence state: its K/V cache and whatever else the variant keeps (LFA: the convolutions' inputs). */
  newState(): unknown;
  /**
   * Attention for x [rows, H] (the input-normed hidden states): rows of one sequence are consecutive positions in order
   * (a prompt), rows of different sequences are independent (a batched step). Appends to each row's state; returns
   * the output [rows, H].
   */
  forward(x: Float32Array, rows: readonly DecodeRow[], ops: DecodeOps): Float32Array;
}

/** An attention plugin that can also build decode layers over stored weights. */
export interface DecodingAttentionPlugin<Options = Record<string, unknown>> extends TensorAttentionPlugin<Options> {
  createDecoder(spec: AttentionSpec, options: Options, weights: DecodeWeights): AttentionDecodeLayer;
}

/** Whether an attention plugin can decode natively (has `createDecoder`). */
export function canDecode(plugin: TensorAttentionPlugin<unknown>): plugin is DecodingAttentionPlugin<unknown> {
  return typeof (plugin as Partial<DecodingAttentionPlugin<unknown>>).createDecoder === 'function';
}

/**
 * Arrays up to this many floats (4 MiB) come from the scratch pool (`DecodeOps.scratch`); longer ones (long prompts)
 * are allocated per call, so that the pool of a decoder stays one layer of a batched decode step.
 */
export const SCRATCH_MAX_FLOATS = 1 << 20;

/**
 * The operations decode layers compose, on plain float32 arrays (row-major), each a native kernel. The arrays they
 * return are scratch: valid until the decoder's next `release()` (one per layer), then reused by the same calls of the
 * next layer, so that a decode step does not allocate (a fresh Float32Array per op cost the 2B decoder about 5 MB of
 * garbage per token, and V8's collections of it about a tenth of a token's CPU time; bench/README.md, "Where a decode
 * token goes"). Keep what must outlive a layer in arrays of your own.
 */
export class DecodeOps {
  private readonly pool: Float32Array[] = [];
  private used = 0;

  constructor(readonly kernels: DecodeKernels) {}

  /** Makes every array handed out since the last release free for reuse (call where none of them is still read). */
  release(): void {
    this.used = 0;
  }

  /**
   * A scratch array of `length` floats, contents undefined, valid until the next `release()`; calls in the same order
   * after each release get the same arrays back. Above `SCRATCH_MAX_FLOATS` a fresh array.
   */
  scratch(length: number): Float32Array {
    if (length > SCRATCH_MAX_FLOATS) return new Float32Array(length);
    const i = this.used++;
    if (this.pool[i]?.length !== length) this.pool[i] = new Float32Array(length);
    return this.pool[i];
  }

  /** y [n, out] = x [n, in] · Wᵀ in W's format (a scratch array, or into `into` [n·out] when given). */
  linear(w: StoredWeight, x: Float32Array, n: number, into?: Float32Array): Float32Array {
    const y = into ?? this.scratch(n * w.out);
    w.format.matmul(w, x, n, y, this.kernels);
    return y;
  }

  /** RMSNorm of x [n, d] with weight [d] (a scratch array). */
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
    const out = this.scratch(x.length);
    this.kernels.rmsNorm(x, weight, eps, out, this.scratch(x.length / weight.length));
    return out;
  }

  /** silu(a)·g elementwise (a scratch array). */
  swiglu(a: Float32Array, g: Float32Array): Float32Array {
    const out = this.scratch(a.length);
    this.kernels.swigluSplit(a, g, out);
    return out;
  }

  /** Rotary embedding in place on the heads of x [n, stride] at the rows' positions. */
  rope(
    x: Float32Array,
    n: number,
    stride: number,
    heads: number,
    d: number,
    positions: Int32Array,
    base: number,
  ): void {
    this.kernels.rope(x, n, stride, heads, d, positions, base);
  }
}

/**
 * A growing K/V cache of one sequence and one layer: K and V token-major [capacity, width] in fp32 (width = heads·d),
 * doubling when full. `attend` runs the shared attention kernel over it.
 */
export class KvCache {
  k: Float32Array;
  v: Float32Array;
  length = 0;

  constructor(
    readonly width: number,
    capacity = 16,
  ) {
    this.k = new Float32Array(capacity * width);
    this.v = new Float32Array(capacity * width);
  }

  /** Appends row `r` of k and v (rows of `stride` floats starting at `offset`, `width` of them used). */
  append(
    k: Float32Array,
    v: Float32Array,
    r: number,
    kStride: number,
    kOffset: number,
    vStride: number,
    vOffset: number,
  ): void {
    if ((this.length + 1) * this.width > this.k.length) {
      const grow = (a: Float32Array) => {
        const b = new Float32Array(a.length * 2);
        b.set(a.subarray(0, this.length * this.width));
        return b;
      };
      this.k = grow(this.k);
      this.v = grow(this.v);
    }
    const at = this.length * this.width;
    this.k.set(k.subarray(r * kStride + kOffset, r * kStride + kOffset + this.width), at);
    this.v.set(v.subarray(r * vStride + vOffset, r * vStride + vOffset + this.width), at);
    this.length++;
  }

  /** Drops positions from `length` on (a shorter prefix is kept). */
  truncate(length: number): void {
    this.length = Math.min(this.length, Math.max(0, length));
  }

  /**
   * Attention of n queries (rows of q [n, qStride], head h at qOffset + h·d) that are the last n positions of this cache;
   * returns [n, heads·d] (an `ops` scratch array).
   */
  attend(ops: DecodeOps, q: Float32Array, n: number, qStride: number, heads: number, d: number): Float32Array {
    const out = ops.scratch(n * heads * d);
    ops.kernels.attend(q, n, qStride, this.k, this.v, this.width, this.length - n, heads, d, out);
    return out;
  }
}
