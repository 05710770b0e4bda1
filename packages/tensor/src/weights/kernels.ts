/** The native weight kernels (from @yuan/tensor-native's `weightKernels`), as this package calls them. */
export interface DecodeKernels {
  linearF32(x: Float32Array, n: number, w: Float32Array, out: number, inFeatures: number, y: Float32Array): void;
  linearBf16(x: Float32Array, n: number, w: Uint16Array, out: number, inFeatures: number, y: Float32Array): void;
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
  linearF32GradInput(
    dy: Float32Array,
    n: number,
    w: Float32Array,
    out: number,
    inFeatures: number,
    dx: Float32Array,
  ): void;
  linearBf16GradInput(
    dy: Float32Array,
    n: number,
    w: Uint16Array,
    out: number,
    inFeatures: number,
    dx: Float32Array,
  ): void;
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
  bf16ToF32(src: Uint16Array, dst: Float32Array): void;
  f32ToBf16(src: Float32Array, dst: Uint16Array): void;
  rope(x: Float32Array, n: number, stride: number, heads: number, d: number, pos: Int32Array, base: number): void;
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
  randomTable(out: Float32Array | Uint16Array, seed: number, table: Float32Array): void;
  randomWords(out: Int32Array | Uint32Array, seed: number): void;
  mapFile(path: string): ArrayBuffer;
  swigluSplit(a: Float32Array, g: Float32Array, out: Float32Array): void;
  rmsNorm(x: Float32Array, w: Float32Array, eps: number, out: Float32Array, inv: Float32Array): void;
  readAll(x: Float32Array): number;
  setDecodeThreads(threads: number): number;
  /** µs an idle decode worker spins before it sleeps (0: at once); returns the setting, a negative argument only reads it. */
  setDecodeSpin(micros: number): number;
  /** In place, Float64: U with H⁻¹ = Uᵀ·U of a symmetric positive definite h [n, n]; false when h is not. */
  inverseUpperCholesky(h: Float64Array, n: number): boolean;
  /** c [m, n] (row stride ldc) −= op(a)·b in Float64: op(a) = a [m, k] (stride lda) or, with transA, a [k, m]ᵀ. */
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

// The optional native package, imported by a computed name (as backend.ts does).
const NATIVE_PACKAGE: string = '@yuan/tensor-native';
let loaded: { kernels?: DecodeKernels; reason?: string } | undefined;

/**
 * Loads the native weight kernels once: the kernels, or the one-line reason they are unavailable (the addon was not
 * built, or `YUAN_NATIVE_SKIP` is set).
 */
export async function loadDecodeKernels(): Promise<{ kernels?: DecodeKernels; reason?: string }> {
  if (loaded) return loaded;
  if (process.env.YUAN_NATIVE_SKIP) return (loaded = { reason: 'YUAN_NATIVE_SKIP is set' });
  try {
    const native = (await import(NATIVE_PACKAGE)) as { weightKernels(): DecodeKernels };
    loaded = { kernels: native.weightKernels() };
  } catch (e) {
    loaded = { reason: (e as Error).message.split('\n')[0] };
  }
  return loaded;
}

/** The native kernels if `loadDecodeKernels` found them, else undefined. */
export function decodeKernels(): DecodeKernels | undefined {
  return loaded?.kernels;
}
