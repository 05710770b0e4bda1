import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The functions of the compiled addon (csrc/addon.cc); every output array is allocated by the caller. */
export interface NativeAddon {
  gemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    aIdx: Int32Array,
    bIdx: Int32Array,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
  ): void;
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  compare(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Uint8Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  /** Reduces x [outer, inner] over inner (out [outer]), or over outer when `leading` (out [inner]). */
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, inner: number, leading?: boolean): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  transpose(x: Float32Array, out: Float32Array, shape: Int32Array, perm: Int32Array): void;
  copyBox(
    src: Float32Array,
    srcShape: Int32Array,
    srcBegin: Int32Array,
    dst: Float32Array,
    dstShape: Int32Array,
    dstBegin: Int32Array,
    size: Int32Array,
  ): void;
  fill(out: Float32Array, value: number): void;
  gather(x: Float32Array, idx: Int32Array, out: Float32Array, outer: number, n: number, inner: number): boolean;
  segmentSum(x: Float32Array, seg: Int32Array, out: Float32Array, segments: number, inner: number): void;
  addN(xs: Float32Array[], out: Float32Array): void;
  rmsNorm(x: Float32Array, w: Float32Array, eps: number, out: Float32Array, inv: Float32Array): void;
  rmsNormGrad(
    x: Float32Array,
    w: Float32Array,
    inv: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
  ): void;
  swiglu(u: Float32Array, out: Float32Array, f: number): void;
  swigluGrad(u: Float32Array, dy: Float32Array, du: Float32Array, f: number): void;
  /** Rotary embedding of x [B, T, H, d] into out [B, H, T, d] with cos, sin [1 or B, T, d] (csrc/fused.cc). */
  ropeHeads(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    out: Float32Array,
    b: number,
    t: number,
    h: number,
    d: number,
  ): void;
  /** Its gradients dx [B, T, H, d], dcos and dsin [1 or B, T, d] from dy [B, H, T, d]. */
  ropeHeadsGrad(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dcos: Float32Array,
    dsin: Float32Array,
    b: number,
    t: number,
    h: number,
    d: number,
  ): void;
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    po: Float32Array,
    mo: Float32Array,
    vo: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    c1: number,
    c2: number,
  ): void;
  /**
   * Causal attention over bh = B·A heads: q [bh, sq, d], k and v [bh, sk, d], bias [B, sk] or null (heads = A);
   * writes o [bh, sq, d] and the rows' log-sum-exp lse [bh, sq]. Runs on the OpenBLAS thread count.
   */
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    bias: Float32Array | null,
    o: Float32Array,
    lse: Float32Array,
    bh: number,
    heads: number,
    sq: number,
    sk: number,
    d: number,
    scale: number,
  ): void;
  /** The gradients dq, dk, dv (and dbias [bh, sk] per head when a bias is given) from dy and the forward's o and lse. */
  attentionGrad(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    bias: Float32Array | null,
    o: Float32Array,
    lse: Float32Array,
    dy: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dbias: Float32Array | null,
    bh: number,
    heads: number,
    sq: number,
    sk: number,
    d: number,
    scale: number,
  ): void;
  /** Threads of OpenBLAS and of the OpenMP loops of the other kernels. */
  setThreads(blas: number, kernels: number): void;
  threads(): number;
  /** The BLAS the addon is linked with: OpenBLAS's build string, then its threading in parentheses ("openmp", "pthreads" or "serial"). */
  blas(): string;
}

// src/addon.ts and the bundled dist/index.js both sit one level below the package root.
const addonPath = fileURLToPath(new URL('../build/Release/yuan_native.node', import.meta.url));
let loaded: NativeAddon | undefined;
let failure: string | undefined;

/** Loads the addon once; throws a one-line error saying why it is unavailable. */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  if (!failure) {
    if (!existsSync(addonPath)) {
      failure = `native addon not built: ${addonPath} is missing (install OpenBLAS with \`apt-get install -y libopenblas-dev\`, then \`pnpm install\` or \`pnpm --filter @yuan/tensor-native run install\`)`;
    } else {
      try {
        // Idle OpenMP threads sleep instead of spinning: on a machine shared with other work, spinning threads
        // steal the cores the other thread needs (libgomp reads this when the addon loads it). YUAN_THREAD_SPIN=N,
        // for a machine of its own, lets them spin N iterations first (GOMP_SPINCOUNT under libgomp's default
        // policy; OMP_WAIT_POLICY=ACTIVE would spin for minutes), so that a decode step's next product finds its
        // workers awake.
        const spin = process.env.YUAN_THREAD_SPIN;
        if (spin !== undefined && spin !== '') {
          if (!/^\d+$/.test(spin))
            throw new Error(`YUAN_THREAD_SPIN=${spin} must be a count of spin iterations (e.g. 30000)`);
          process.env.GOMP_SPINCOUNT ??= spin;
        } else process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
        // Likewise OpenBLAS's workers: spin only 2^4 cycles after a product instead of about 0.1 s, which would take
        // the second core from the kernels that run between products.
        process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
        loaded = createRequire(import.meta.url)(addonPath) as NativeAddon;
        return loaded;
      } catch (e) {
        failure = `native addon failed to load: ${(e as Error).message.split('\n')[0]}`;
      }
    }
  }
  throw new Error(failure);
}
