import type { AttentionSpec } from '@yuan/core';
import { KvCache, type AttentionDecodeLayer, type DecodeOps, type DecodeRow, type DecodeWeights } from '@yuan/tensor';
import type { LfaOptions } from './options.js';

/** Per-sequence state of one LFA layer: K/V, and the last kernel−1 inputs of each convolution (zeros before the first). */
interface LfaState {
  kv: KvCache;
  x: Float32Array;
  u: Float32Array;
}

/**
 * The causal convolution over the rows of one run (consecutive positions of one sequence): inputs [m, c] after the
 * `history` (kernel−1 rows, oldest first), stacked per channel as [m, c·K] (tap k of channel c at c·K + k, the layout
 * of the Conv2d weight viewed as [out, in·K]); the history is advanced in place.
 */
function stackRun(
  x: Float32Array,
  start: number,
  m: number,
  c: number,
  kernel: number,
  history: Float32Array,
  out: Float32Array,
  outRow: number,
): void {
  const h = kernel - 1;
  // row t of the run's window: history row t (t < h) or input row start + t − h; plain loops, no allocation (this runs
  // twice per layer per token between the native products)
  for (let j = 0; j < m; j++) {
    const o = (outRow + j) * c * kernel;
    for (let k = 0; k < kernel; k++) {
      const t = j + k;
      const a = t < h ? history : x;
      const b = t < h ? t * c : (start + t - h) * c;
      for (let ch = 0, at = o + k; ch < c; ch++, at += kernel) out[at] = a[b + ch];
    }
  }
  // the next history: the window's last h rows
  if (h === 0) return;
  if (m >= h) history.set(x.subarray((start + m - h) * c, (start + m) * c));
  else {
    history.copyWithin(0, m * c);
    history.set(x.subarray(start * c, (start + m) * c), (h - m) * c);
  }
}

/** Runs of consecutive rows that share a state: [first row, count]. */
function runs(rows: readonly DecodeRow[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < rows.length; i++) {
    if (i > 0 && rows[i].state === rows[i - 1].state) out[out.length - 1][1]++;
    else out.push([i, 1]);
  }
  return out;
}

/** LFA's decode layer over stored weights (see `lfaAttention`): the same math as its tensor forward, on plain arrays. */
export function createLfaDecoder(spec: AttentionSpec, o: LfaOptions, weights: DecodeWeights): AttentionDecodeLayer {
  const { hiddenSize: hs, numHeads: heads, headDim: d } = spec;
  const mid = o.convs === 2 ? hs / 2 : hs;
  const wq = weights.linear('q_proj');
  const wk = weights.linear('k_proj');
  const wv = weights.linear('v_proj');
  const wo = weights.linear('o_proj');
  const w1 = weights.linear('lf_gate.conv1');
  const b1 = weights.vector('lf_gate.conv1.bias');
  const w2 = o.convs === 2 ? weights.linear('lf_gate.conv2') : undefined;
  const b2 = o.convs === 2 ? weights.vector('lf_gate.conv2.bias') : undefined;
  const wn = o.norm ? weights.vector('lf_gate.output_layernorm.weight') : undefined;
  const conv = (
    ops: DecodeOps,
    input: Float32Array,
    c: number,
    w: typeof w1,
    bias: Float32Array,
    rows: readonly DecodeRow[],
    pick: (s: LfaState) => Float32Array,
  ) => {
    // every element is written by stackRun (scratch arrays come back with old contents)
    const stacked = ops.scratch(rows.length * c * o.kernel);
    for (const [first, m] of runs(rows))
      stackRun(input, first, m, c, o.kernel, pick(rows[first].state as LfaState), stacked, first);
    const y = ops.linear(w, stacked, rows.length);
    const out = w.out;
    for (let r = 0; r < rows.length; r++) for (let j = 0; j < out; j++) y[r * out + j] += bias[j];
    return y;
  };
  return {
    newState: (positions?: number): LfaState => ({
      kv: KvCache.forPositions(hs, positions),
      x: new Float32Array((o.kernel - 1) * hs),
      u: new Float32Array((o.kernel - 1) * mid),
    }),
    forward(x, rows, ops) {
      const n = rows.length;
      const u = conv(ops, x, hs, w1, b1, rows, (s) => s.x);
      const filtered = w2 ? conv(ops, u, mid, w2, b2!, rows, (s) => s.u) : u;
      for (let i = 0; i < filtered.length; i++) filtered[i] += x[i];
      const z = wn ? ops.rmsNorm(filtered, wn, spec.rmsNormEps) : filtered;
      // the fused QK output [q_proj(z) | k_proj(z)] viewed as [heads, 2d]: head h's query is its first d, key its last d
      const [qo, ko] = ops.linearPair(wq, wk, z, n);
      // every element of q and k is written below (scratch arrays come back with old contents)
      const q = ops.scratch(n * hs);
      const k = ops.scratch(n * hs);
      // [qo | ko] (row r) viewed as [heads, 2d]: head h's query is the d values from 2hd, its key the d from 2hd + d,
      // each block inside qo or inside ko (hs is a multiple of d); plain loops, no subarray views (two per head per row
      // were a third of this layer's JavaScript time)
      for (let r = 0; r < n; r++) {
        const row = r * hs;
        for (let h = 0; h < heads; h++) {
          const at = row + h * d;
          const fq = 2 * h * d;
          const fk = fq + d;
          const sq = fq < hs ? qo : ko;
          const sk = fk < hs ? qo : ko;
          const oq = row + (fq < hs ? fq : fq - hs);
          const ok = row + (fk < hs ? fk : fk - hs);
          for (let j = 0; j < d; j++) {
            q[at + j] = sq[oq + j];
            k[at + j] = sk[ok + j];
          }
        }
      }
      const v = ops.linear(wv, x, n);
      const pos = Int32Array.from(rows, (r) => r.position);
      ops.rope(q, n, hs, heads, d, pos, spec.ropeBase);
      ops.rope(k, n, hs, heads, d, pos, spec.ropeBase);
      // every row's key and value into its sequence's cache, then one attention call for all rows
      const caches = rows.map((r) => (r.state as LfaState).kv);
      for (let r = 0; r < n; r++) caches[r].append(k, v, r, hs, 0, hs, 0);
      return ops.linear(wo, ops.attendRows(q, n, hs, caches, heads, d), n);
    },
  };
}
