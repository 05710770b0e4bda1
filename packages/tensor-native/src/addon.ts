import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
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

// Spin iterations of `YUAN_THREAD_SPIN=auto` on an idle machine: on stop 29's quiet 2-core AVX2 machine 3000 and 30000
// ran int4 decode of the 2B 5–25% faster than sleeping workers, and an empty parallel region costs 1.3 µs instead of
// 53–73 µs; at load average 5–8 spinning made decode 2–3x slower, hence the check of the other work first
// (bench/README.md, "Spinning decode workers" and "Stop 30").
const AUTO_SPIN = 30000;

/** How idle OpenMP workers wait, as chosen when the addon was loaded (for `yuan env`), e.g. "sleep" or "spin 30000". */
export function workerWaitPolicy(): string {
  return workerWaits;
}
let workerWaits = 'not loaded';

// Cores busy (all CPUs, /proc/stat) over the next `ms` milliseconds while this thread waits, or undefined where that
// file is not readable.
function busyCores(ms: number): number | undefined {
  const sample = (): [number, number] | undefined => {
    try {
      const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
      return [total, fields[3] + (fields[4] ?? 0)]; // idle + iowait
    } catch {
      return undefined;
    }
  };
  const a = sample();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = sample();
  if (!a || !b || b[0] <= a[0]) return undefined;
  return ((b[0] - a[0] - (b[1] - a[1])) / (b[0] - a[0])) * cpus().length;
}

// Sets libgomp's wait settings from YUAN_THREAD_SPIN (unset: sleep; N: spin N iterations; auto: spin AUTO_SPIN when the
// other work leaves the decode threads their cores) unless OMP_WAIT_POLICY or GOMP_SPINCOUNT are set already; returns
// what it chose. Throws the one-line error for any other value.
function chooseWorkerWaits(spin: string | undefined): string {
  const set = ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'].filter((v) => process.env[v]);
  if (set.length > 0) return `as set (${set.map((v) => `${v}=${process.env[v]}`).join(', ')})`;
  if (spin === undefined || spin === '') {
    process.env.OMP_WAIT_POLICY = 'PASSIVE';
    return 'sleep';
  }
  if (spin === 'auto') {
    const threads = Number(process.env.YUAN_NATIVE_THREADS) || cpus().length;
    const busy = busyCores(50);
    const free = busy !== undefined && busy <= cpus().length - threads + 0.5;
    const why = busy === undefined ? 'load unknown' : `${busy.toFixed(1)} of ${cpus().length} cores busy`;
    if (!free) {
      process.env.OMP_WAIT_POLICY = 'PASSIVE';
      return `sleep (YUAN_THREAD_SPIN=auto: ${why})`;
    }
    process.env.GOMP_SPINCOUNT = String(AUTO_SPIN);
    return `spin ${AUTO_SPIN} (YUAN_THREAD_SPIN=auto: ${why})`;
  }
  if (!/^\d+$/.test(spin))
    throw new Error(`YUAN_THREAD_SPIN=${spin} must be a count of spin iterations (e.g. 30000) or auto`);
  process.env.GOMP_SPINCOUNT = spin;
  return `spin ${spin}`;
}

// The environment variables the loader sets for the libraries the addon brings in (and puts back afterwards).
const SETTINGS = ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OPENBLAS_THREAD_TIMEOUT'] as const;

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
        // workers awake; `auto` spins 30000 when the machine's other work leaves the decode threads their cores,
        // measured now, and sleeps otherwise.
        // libgomp and OpenBLAS read these when the addon loads them; afterwards the environment is put back, so that
        // the processes this one starts (ranks, the decode bench's engines, sandboxes) choose for themselves.
        const before = Object.fromEntries(SETTINGS.map((v) => [v, process.env[v]]));
        try {
          workerWaits = chooseWorkerWaits(process.env.YUAN_THREAD_SPIN);
          // Likewise OpenBLAS's workers: spin only 2^4 cycles after a product instead of about 0.1 s, which would take
          // the second core from the kernels that run between products.
          process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
          loaded = createRequire(import.meta.url)(addonPath) as NativeAddon;
        } finally {
          for (const v of SETTINGS) {
            if (before[v] === undefined) delete process.env[v];
            else process.env[v] = before[v];
          }
        }
        return loaded;
      } catch (e) {
        failure = `native addon failed to load: ${(e as Error).message.split('\n')[0]}`;
      }
    }
  }
  throw new Error(failure);
}
