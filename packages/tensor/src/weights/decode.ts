import { YuanError, type AttentionSpec } from '@yuan/core';
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
  /**
   * A fresh per-sequence state: its K/V cache and whatever else the variant keeps (LFA: the convolutions' inputs).
   * `positions`, when known, is how many positions the sequence will hold at most (prompt + new tokens): the cache is
   * allocated for them at once (`KvCache`'s capacity) instead of growing by copies as it fills.
   */
  newState(positions?: number): unknown;
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
  /**
   * Whether `linearPair` and `attendRows` make one native call (default), or, with `fused: false`, the calls they
   * replace (one product per weight, one `attend` per sequence): the same results, kept to measure the difference
   * (`YUAN_DECODE_UNFUSED=1` sets the default to false; bench/README.md, "One call per shared input").
   */
  readonly fused: boolean;

  constructor(
    readonly kernels: DecodeKernels,
    options: { fused?: boolean } = {},
  ) {
    this.fused = options.fused ?? !process.env.YUAN_DECODE_UNFUSED;
  }

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

  /**
   * The two products of one input: [x · aᵀ [n, a.out], x · bᵀ [n, b.out]] (scratch arrays). Weights of one format and
   * input width whose format has `matmulPair` go through it (one native call: one parallel region, the activations
   * quantized once), bit for bit the two `linear` calls it replaces; otherwise (or with `fused` off) those two calls.
   */
  linearPair(a: StoredWeight, b: StoredWeight, x: Float32Array, n: number): [Float32Array, Float32Array] {
    const ya = this.scratch(n * a.out);
    const yb = this.scratch(n * b.out);
    if (this.fused && a.format === b.format && a.in === b.in && a.format.matmulPair) {
      a.format.matmulPair(a, b, x, n, ya, yb, this.kernels);
    } else {
      a.format.matmul(a, x, n, ya, this.kernels);
      b.format.matmul(b, x, n, yb, this.kernels);
    }
    return [ya, yb];
  }

  /**
   * Attention of n query rows (q [n, qStride], head h at h·d), row i against `caches[i]` (the cache of its sequence,
   * already holding the row's own key and value): the rows of one cache are its last positions in their order (a
   * prompt's rows, or one decode row), rows of different caches are independent. Returns [n, heads·d] (a scratch
   * array). One native call for all rows (`attendRows`), equal to one `KvCache.attend` per run of rows, which is what
   * it makes with `fused` off.
   */
  attendRows(
    q: Float32Array,
    n: number,
    qStride: number,
    caches: readonly KvCache[],
    heads: number,
    d: number,
  ): Float32Array {
    if (caches.length !== n) throw new YuanError('input', `attendRows: ${caches.length} caches for ${n} rows`);
    const out = this.scratch(n * heads * d);
    if (!this.fused) {
      for (let first = 0; first < n;) {
        let m = 1;
        while (first + m < n && caches[first + m] === caches[first]) m++;
        out.set(
          caches[first].attend(this, q.subarray(first * qStride, (first + m) * qStride), m, qStride, heads, d),
          first * heads * d,
        );
        first += m;
      }
      return out;
    }
    // the distinct caches in order of first use, each row's index among them, and how many of its rows come later
    const index = new Map<KvCache, number>();
    const ks: Float32Array[] = [];
    const vs: Float32Array[] = [];
    const left: number[] = [];
    const cache = new Int32Array(n);
    const seen = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let c = index.get(caches[i]);
      if (c === undefined) {
        c = ks.length;
        index.set(caches[i], c);
        ks.push(caches[i].k);
        vs.push(caches[i].v);
        left.push(0);
      }
      if (caches[i].width !== caches[0].width)
        throw new YuanError('input', `attendRows: caches of widths ${caches[0].width} and ${caches[i].width}`);
      cache[i] = c;
      left[c]++;
    }
    for (let i = 0; i < n; i++) {
      const c = cache[i];
      seen[i] = caches[i].length - --left[c];
      if (seen[i] < 1) throw new YuanError('input', `attendRows: a cache holds fewer positions than its rows`);
    }
    this.kernels.attendRows(q, n, qStride, ks, vs, cache, seen, caches[0].width, heads, d, out);
    return out;
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
 * Most positions `KvCache.forPositions` reserves up front (past them the cache doubles as it fills): a request that
 * asks for the whole context does not hold all of it before it is used.
 */
const KV_RESERVE_MAX = 1024;

/**
 * A growing K/V cache of one sequence and one layer: K and V token-major [capacity, width] in fp32 (width = heads·d),
 * doubling when full. `attend` runs the shared attention kernel over it.
 */
export class KvCache {
  /**
   * A cache for a sequence that will hold at most `positions` positions (the decode layer's `newState` hint): its
   * capacity is `positions` (at most 1024), or 16 without a hint. Reserving what a request will use spares the copies
   * of each doubling, which for a 2B model's 24 layers × 4 sequences took 90–300 ms a step at 16 and 32 positions
   * (bench/README.md, "Stop 32").
   */
  static forPositions(width: number, positions?: number): KvCache {
    const hint = positions !== undefined && Number.isFinite(positions) ? Math.floor(positions) : 0;
    return new KvCache(width, hint >= 1 ? Math.min(hint, KV_RESERVE_MAX) : 16);
  }

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
