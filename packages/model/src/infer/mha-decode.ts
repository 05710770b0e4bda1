import type { AttentionSpec } from '@yuan/core';
import { KvCache, type AttentionDecodeLayer, type DecodeWeights } from '@yuan/tensor';

/** The `mha` attention's decode layer over stored weights: q/k/v projections, RoPE, the K/V cache, o projection. */
export function createMhaDecoder(spec: AttentionSpec, _options: unknown, weights: DecodeWeights): AttentionDecodeLayer {
  const { hiddenSize: hs, numHeads: heads, headDim: d } = spec;
  const [wq, wk, wv, wo] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => weights.linear(n));
  return {
    newState: () => new KvCache(hs),
    forward(x, rows, ops) {
      const n = rows.length;
      const q = ops.linear(wq, x, n);
      const k = ops.linear(wk, x, n);
      const v = ops.linear(wv, x, n);
      const pos = Int32Array.from(rows, (r) => r.position);
      ops.rope(q, n, hs, heads, d, pos, spec.ropeBase);
      ops.rope(k, n, hs, heads, d, pos, spec.ropeBase);
      const att = ops.scratch(n * hs); // the runs cover every row
      for (let first = 0; first < n;) {
        let m = 1;
        while (first + m < n && rows[first + m].state === rows[first].state) m++;
        const kv = rows[first].state as KvCache;
        for (let j = 0; j < m; j++) kv.append(k, v, first + j, hs, 0, hs, 0);
        att.set(kv.attend(ops, q.subarray(first * hs, (first + m) * hs), m, hs, heads, d), first * hs);
        first += m;
      }
      return ops.linear(wo, att, n);
    },
  };
}
