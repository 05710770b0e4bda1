import type { AttentionSpec } from '@yuan/core';
import { KvCache, type AttentionDecodeLayer, type DecodeWeights } from '@yuan/tensor';

/** The `mha` attention's decode layer over stored weights: q/k/v projections, RoPE, the K/V cache, o projection. */
export function createMhaDecoder(spec: AttentionSpec, _options: unknown, weights: DecodeWeights): AttentionDecodeLayer {
  const { hiddenSize: hs, numHeads: heads, headDim: d } = spec;
  const [wq, wk, wv, wo] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => weights.linear(n));
  return {
    newState: (positions) => KvCache.forPositions(hs, positions),
    forward(x, rows, ops) {
      const n = rows.length;
      const [q, k] = ops.linearPair(wq, wk, x, n);
      const v = ops.linear(wv, x, n);
      const pos = Int32Array.from(rows, (r) => r.position);
      ops.rope(q, n, hs, heads, d, pos, spec.ropeBase);
      ops.rope(k, n, hs, heads, d, pos, spec.ropeBase);
      // every row's key and value into its sequence's cache, then one attention call for all rows
      const caches = rows.map((r) => r.state as KvCache);
      for (let r = 0; r < n; r++) caches[r].append(k, v, r, hs, 0, hs, 0);
      return ops.linear(wo, ops.attendRows(q, n, hs, caches, heads, d), n);
    },
  };
}
