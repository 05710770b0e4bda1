import { loadAddon } from './addon.js';

/**
 * The addon's kernels for weights kept in their storage format, on plain typed arrays (no tfjs). Shapes are row-major;
 * a linear weight is [out, in] as PyTorch stores it (GPTQ: see `linearGptq`). Every result goes into a caller array.
 * Wrong array types or sizes throw one-line TypeErrors naming the argument.
 */
export interface WeightKernels {
  /**
   * y [n, out] = x [n, in] · wᵀ for fp32 w [out, in]: below 32 rows a register kernel that reads w once per 4 rows
   * (each row's sums independent of the others), from 32 on OpenBLAS GEMM.
   */
  linearF32(x: Float32Array, n: number, w: Float32Array, out: number, inFeatures: number, y: Float32Array): void;
  /** y [n, out] = x [n, in] · wᵀ for w [out, in] as raw bfloat16 bits, converted in registers, fp32 accumulation. */
  linearBf16(x: Float32Array, n: number, w: Uint16Array, out: number, inFeatures: number, y: Float32Array): void;
  /**
   * y [n, out] = x [n, in] · W for a GPTQ-layout weight (Hugging Face / AutoGPTQ): qweight [in·bits/32, out] int32 packed
   * along the input dim (lowest bits = first row), qzeros [groups, ceil(out·bits/32)] packed along the output dim, scales
   * [groups, out] fp16 bits; W[k][c] = (q − (z + zeroOffset))·s of group floor(k/group). `perm` (or null): the input
   * feeding packed row k is x[perm[k]] (act-order checkpoints, rows sorted by group at load). Below 32 rows the
   * activations are quantized per chunk inside a group (≤ 32 inputs with int8 codes for 4-bit weights, ≤ 16 inputs with
   * int16 codes for 8-bit weights; scale max|x|/127 or /32767, round half to even) and multiplied with integer dot
   * products, summed in fp32 (W read once per 4 rows; a row's result is bit for bit its result alone); from 32 rows
   * on, tiles of W are dequantized and multiplied in fp32 by OpenBLAS.
   */
  linearGptq(
    x: Float32Array,
    n: number,
    qweight: Int32Array,
    qzeros: Int32Array,
    scales: Uint16Array,
    perm: Int32Array | null,
    bits: number,
    group: number,
    inFeatures: number,
    out: number,
    zeroOffset: number,
    y: Float32Array,
  ): void;
  /**
   * Two products of one input x [n, in]: ya [n, outA] = x · waᵀ and yb [n, outB] = x · wbᵀ (fp32 [out, in]), each bit
   * for bit `linearF32`'s result. Below 32 rows one parallel region runs both products' tasks (one fork/join instead of
   * two, on the threads the larger product alone would take); from 32 rows on, the two products in turn.
   */
  linearF32Pair(
    x: Float32Array,
    n: number,
    wa: Float32Array,
    outA: number,
    wb: Float32Array,
    outB: number,
    inFeatures: number,
    ya: Float32Array,
    yb: Float32Array,
  ): void;
  /** `linearF32Pair` for bf16 weights (raw bits), each result bit for bit `linearBf16`'s; x is split into its even and odd inputs once. */
  linearBf16Pair(
    x: Float32Array,
    n: number,
    wa: Uint16Array,
    outA: number,
    wb: Uint16Array,
    outB: number,
    inFeatures: number,
    ya: Float32Array,
    yb: Float32Array,
  ): void;
  /**
   * `linearF32Pair` for two GPTQ weights of the same input width (each as the 9 GPTQ arguments of `linearGptq`: qweight,
   * qzeros, scales, perm, bits, group, in, out, zeroOffset), each result bit for bit `linearGptq`'s. Below 32 rows the
   * activations are quantized once when both weights have the same bits, group and permutation (else once per weight)
   * and one parallel region runs both weights' column stripes.
   */
  linearGptqPair(
    x: Float32Array,
    n: number,
    qweightA: Int32Array,
    qzerosA: Int32Array,
    scalesA: Uint16Array,
    permA: Int32Array | null,
    bitsA: number,
    groupA: number,
    inA: number,
    outA: number,
    zeroOffsetA: number,
    qweightB: Int32Array,
    qzerosB: Int32Array,
    scalesB: Uint16Array,
    permB: Int32Array | null,
    bitsB: number,
    groupB: number,
    inB: number,
    outB: number,
    zeroOffsetB: number,
    ya: Float32Array,
    yb: Float32Array,
  ): void;
  /**
   * dx [n, in] = dy [n, out] · w for fp32 w [out, in] (the input gradient of `linearF32`): OpenBLAS GEMM on blocks of
   * 256 columns of dx, one per thread.
   */
  linearF32GradInput(
    dy: Float32Array,
    n: number,
    w: Float32Array,
    out: number,
    inFeatures: number,
    dx: Float32Array,
  ): void;
  /**
   * dx [n, in] = dy [n, out] · w for w [out, in] as raw bfloat16 bits (the input gradient of `linearBf16`): tiles of
   * 64–512 columns of w widened to fp32 (at most 8 MB per thread, never all of w) and multiplied by OpenBLAS.
   */
  linearBf16GradInput(
    dy: Float32Array,
    n: number,
    w: Uint16Array,
    out: number,
    inFeatures: number,
    dx: Float32Array,
  ): void;
  /**
   * dx [n, in] = dy [n, out] · W for a GPTQ weight laid out as in `linearGptq` (its input gradient): tiles of 64–512
   * packed input rows dequantized to fp32 (at most 8 MB per thread; the values of `dequantGptq`, never all of W) and
   * multiplied by OpenBLAS; with `perm`, packed row k's gradient goes to input perm[k].
   */
  linearGptqGradInput(
    dy: Float32Array,
    n: number,
    qweight: Int32Array,
    qzeros: Int32Array,
    scales: Uint16Array,
    perm: Int32Array | null,
    bits: number,
    group: number,
    inFeatures: number,
    out: number,
    zeroOffset: number,
    dx: Float32Array,
  ): void;
  /** W's fp32 values for columns [c0, c1) of a GPTQ weight, as wt [in, c1 − c0]. */
  dequantGptq(
    qweight: Int32Array,
    qzeros: Int32Array,
    scales: Uint16Array,
    perm: null,
    bits: number,
    group: number,
    inFeatures: number,
    out: number,
    zeroOffset: number,
    c0: number,
    c1: number,
    wt: Float32Array,
  ): void;
  /** bfloat16 bits → float32 (exact). */
  bf16ToF32(src: Uint16Array, dst: Float32Array): void;
  /** float32 → bfloat16 bits, round to nearest even. */
  f32ToBf16(src: Float32Array, dst: Uint16Array): void;
  /** Rotary embedding (rotate-half) in place on x [n, stride] whose first heads·d floats are the heads, at positions pos [n]. */
  rope(x: Float32Array, n: number, stride: number, heads: number, d: number, pos: Int32Array, base: number): void;
  /**
   * Causal attention of q [n, qStride] (queries at positions start..start+n−1) over k, v [start + n, kvStride] (head h at
   * h·d in each row): out [n, heads·d] = softmax(q·kᵀ/√d)·v per head.
   */
  attend(
    q: Float32Array,
    n: number,
    qStride: number,
    k: Float32Array,
    v: Float32Array,
    kvStride: number,
    start: number,
    heads: number,
    d: number,
    out: Float32Array,
  ): void;
  /**
   * Attention of n rows, each over its own K/V cache (the rows of a batched decode step, several sequences in one call):
   * row i's query (q [n, qStride], head h at h·d) attends positions [0, seen[i]) of ks[cache[i]], vs[cache[i]]
   * ([len, kvStride], head h at h·d): out [n, heads·d] = softmax(q·kᵀ/√d)·v per head, each row bit for bit what `attend`
   * gives it. One parallel region over rows × heads, one thread below 2^21 multiply-adds (Σ seen·heads·d·2).
   */
  attendRows(
    q: Float32Array,
    n: number,
    qStride: number,
    ks: readonly Float32Array[],
    vs: readonly Float32Array[],
    cache: Int32Array,
    seen: Int32Array,
    kvStride: number,
    heads: number,
    d: number,
    out: Float32Array,
  ): void;
  /** out[i] = table[h(seed, i) mod 65536] for a counter-based 64-bit hash; a Uint16Array receives the values as bf16. */
  randomTable(out: Float32Array | Uint16Array, seed: number, table: Float32Array): void;
  /** Random 32-bit words from the same hash. */
  randomWords(out: Int32Array | Uint32Array, seed: number): void;
  /** The whole file as an ArrayBuffer over a private copy-on-write memory mapping (pages are read on first touch). */
  mapFile(path: string): ArrayBuffer;
  /** out = silu(a)·g elementwise (SwiGLU with its two halves in separate arrays). */
  swigluSplit(a: Float32Array, g: Float32Array, out: Float32Array): void;
  /** RMSNorm of x [rows, d] with weight [d]: out = x·inv·w, inv [rows] = 1/sqrt(mean(x²) + eps). */
  rmsNorm(x: Float32Array, w: Float32Array, eps: number, out: Float32Array, inv: Float32Array): void;
  /** The sum of x read by every decode thread (whole 4096-float blocks only): times a STREAM-like read of memory. */
  readAll(x: Float32Array): number;
  /** Threads of these kernels (default: the number of cores); returns the setting. */
  setDecodeThreads(threads: number): number;
  /**
   * How long (µs, at most 10 s) an idle worker of these kernels spins before it sleeps; returns the setting (a negative
   * argument only reads it). Default 1000, or `YUAN_DECODE_SPIN_US` at load; 0 sleeps at once. The register paths
   * (fewer than 32 rows) and attention run on the addon's own worker threads, not OpenMP's: the calling thread never
   * waits for a sleeping worker to wake (a late one finds the tasks taken), and training's kernels never wake them.
   * On a 2-core VM spinning made a 4-sequence 2B step 7–10% faster and a one-sequence step no faster, for 6–9% more
   * CPU (csrc/pool.h).
   */
  setDecodeSpin(micros: number): number;
  /**
   * In place, Float64: the upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U, strict lower triangle 0) of a symmetric positive
   * definite h [n, n] (GPTQ's inverse-Hessian factor), blocked over OpenBLAS (dsyrk, dtrsm, dtrmm); about 2n³/3
   * multiply-adds. Returns false (h partly overwritten) when h is not positive definite.
   */
  inverseUpperCholesky(h: Float64Array, n: number): boolean;
  /**
   * c [m, n] (row stride ldc) −= op(a) · b in Float64 (OpenBLAS dgemm): op(a) [m, k] is a [m, k] (row stride lda), or
   * with `transA` the transpose of a [k, m]; b [k, n] (row stride ldb). Pass subarrays to start inside a matrix.
   */
  gemmSub64(
    transA: boolean,
    m: number,
    n: number,
    k: number,
    a: Float64Array,
    lda: number,
    b: Float64Array,
    ldb: number,
    c: Float64Array,
    ldc: number,
  ): void;
}

/**
 * The weight kernels of the native addon, their threads and idle spin set from `YUAN_NATIVE_THREADS` and
 * `YUAN_DECODE_SPIN_US` on first use; throws the one-line reason when the addon is not built or `YUAN_DECODE_SPIN_US`
 * is not a whole number of microseconds up to 10 s.
 */
export function weightKernels(): WeightKernels {
  const k = loadAddon() as unknown as WeightKernels;
  if (!configured) {
    const threads = Number(process.env.YUAN_NATIVE_THREADS);
    if (Number.isInteger(threads) && threads > 0) k.setDecodeThreads(threads);
    const spin = process.env.YUAN_DECODE_SPIN_US;
    if (spin !== undefined && spin !== '') {
      if (!/^\d+$/.test(spin) || Number(spin) > 10_000_000)
        throw new Error(
          `YUAN_DECODE_SPIN_US=${spin} must be the microseconds (0 to 10000000) an idle decode worker spins before it sleeps`,
        );
      k.setDecodeSpin(Number(spin));
    }
    configured = true;
  }
  return k;
}

let configured = false;
