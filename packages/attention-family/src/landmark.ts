import { linear, ropeTables, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { mergeHeads, rope, split, toHeads } from './core.js';
import { createFilter } from './filter.js';
import { landmarkDescription } from './landmark-describe.js';
import type { LandmarkOptions } from './options.js';

const NEG = -1e9;

/**
 * Landmark attention (Mohtashami & Jaggi 2023, "Landmark Attention: Random-Access Infinite Context Length for
 * Transformers"), as a plugin that cannot insert tokens: the sequence is cut into blocks of `block` tokens and each
 * finished block's landmark key is the mean of its keys (the paper trains a landmark token per block). A query
 * attends to its own block directly and to each earlier block through the grouped softmax: the block's share is
 * exp(q·landmark)/Z, split over the block's tokens by a softmax within it (Z sums the own block's and the landmarks'
 * exponentials). With `topK` only the best-scoring past blocks keep their share (the paper's retrieval). RoPE uses
 * block-local positions (each past block is seen as if it directly preceded the query's block, the paper's
 * positional handling for retrieved blocks), so no relative distance exceeds 2·block and the layer runs beyond its
 * training length. Block positions are counted per sequence (left padding of batched serving, read from `keyBias`,
 * is skipped); position ids that restart inside a packed sequence are not followed.
 */
export const landmarkAttention: TensorAttentionPlugin<LandmarkOptions> = {
  ...landmarkDescription,
  create(spec, o, param) {
    const [wq, wk, wv, wo] = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'].map(param);
    const a = spec.numHeads;
    const d = spec.headDim;
    const L = o.block;
    const filter = o.filter ? createFilter(param, spec.rmsNormEps) : undefined;
    const tables = (pos: number[][]) => ropeTables(tf.tensor2d(pos, undefined, 'int32'), d, spec.ropeBase);
    return {
      forward(x, ctx) {
        const f = filter?.apply(x, ctx.cache, ctx.useCache);
        const z = f?.z ?? x;
        const [b, t] = x.shape;
        const prev = ctx.cache?.k ? ctx.cache.k.shape[2]! : 0;
        const s = prev + t;
        const pads = new Array<number>(b).fill(0);
        if (ctx.keyBias) {
          const bias = ctx.keyBias.dataSync();
          for (let r = 0; r < b; r++) while (pads[r] < s && bias[r * s + pads[r]] < -1e8) pads[r]++;
        }
        const own = (r: number, j: number) => j - pads[r];
        const newPos = (shift: number) =>
          Array.from({ length: b }, (_, r) =>
            Array.from({ length: t }, (_, i) => (Math.max(0, own(r, prev + i)) % L) + shift),
          );
        const kt = tables(newPos(0));
        const ql = tables(newPos(0));
        const qp = tables(newPos(L));
        const q = split(linear(z, wq), a, d);
        let k = toHeads(rope(split(linear(z, wk), a, d), kt.cos, kt.sin));
        let v = toHeads(split(linear(x, wv), a, d));
        if (ctx.cache?.k) {
          k = tf.concat([ctx.cache.k as tf.Tensor4D, k], 2);
          v = tf.concat([ctx.cache.v as tf.Tensor4D, v], 2);
        }
        const qLocal = toHeads(rope(q, ql.cos, ql.sin));
        const qPast = toHeads(rope(q, qp.cos, qp.sin));
        // masks and block membership, per row
        const blocks = Math.max(1, ...pads.map((p) => Math.ceil((s - p) / L)));
        const local = new Float32Array(b * t * s).fill(NEG);
        const past = new Float32Array(b * t * s).fill(NEG);
        const gate = new Float32Array(b * t * blocks).fill(NEG);
        const member = new Float32Array(b * s * blocks);
        const mean = new Float32Array(b * blocks * s);
        for (let r = 0; r < b; r++) {
          for (let j = pads[r]; j < s; j++) member[(r * s + j) * blocks + Math.floor(own(r, j) / L)] = 1;
          for (let n = 0; n < blocks; n++) {
            const start = pads[r] + n * L;
            const count = Math.max(0, Math.min(L, s - start));
            for (let j = start; j < start + count; j++) mean[(r * blocks + n) * s + j] = 1 / count;
          }
          for (let i = 0; i < t; i++) {
            const qi = own(r, prev + i);
            const bi = Math.floor(qi / L);
            for (let j = pads[r]; j < s; j++) {
              const bj = Math.floor(own(r, j) / L);
              if (bj === bi && own(r, j) <= qi) local[(r * t + i) * s + j] = 0;
              else if (bj < bi) past[(r * t + i) * s + j] = 0;
            }
            for (let n = 0; n < bi; n++) gate[(r * t + i) * blocks + n] = 0;
          }
        }
        // per-row tables, broadcast over the heads here: TF.js's matMul pairs flattened batch dims modulo, which would
        // mix rows for [B,1] against [B,A] when B > 1
        const ind = tf.broadcastTo(tf.tensor4d(member, [b, 1, s, blocks]), [b, a, s, blocks]);
        const landmarks = tf.matMul(tf.broadcastTo(tf.tensor4d(mean, [b, 1, blocks, s]), [b, a, blocks, s]), k); // [B,A,N,d]
        const scale = 1 / Math.sqrt(d);
        const sl = tf.add(tf.mul(tf.matMul(qLocal, k, false, true), scale), tf.tensor4d(local, [b, 1, t, s]));
        const sp = tf.add(tf.mul(tf.matMul(qPast, k, false, true), scale), tf.tensor4d(past, [b, 1, t, s]));
        let g = tf.add(tf.mul(tf.matMul(qPast, landmarks, false, true), scale), tf.tensor4d(gate, [b, 1, t, blocks]));
        if (o.topK > 0 && blocks > o.topK) {
          // the selection is a constant for the gradient (TF.js has no gradient for topk): taken from a copy of g
          const scores = tf.tensor4d(g.dataSync(), [b, a, t, blocks]);
          const kth = tf.slice(tf.topk(scores, o.topK).values, [0, 0, 0, o.topK - 1], [b, a, t, 1]);
          g = tf.where(tf.greaterEqual(scores, kth), g, tf.fill(g.shape, NEG));
        }
        const m = tf.maximum(tf.max(sl, -1, true), tf.max(g, -1, true));
        const el = tf.exp(tf.sub(sl, m));
        const eg = tf.exp(tf.sub(g, m));
        const total = tf.add(tf.sum(el, -1, true), tf.sum(eg, -1, true));
        // softmax within each past block, stabilised by that block's own max: with the max over all past tokens a
        // block far below it underflows to 0/0 (NaN in training). Blocks a query may not see get finite values here
        // and weight 0 from `eg`
        const outside = tf.tensor(
          member.map((x) => (x ? 0 : NEG)),
          [b, 1, 1, s, blocks],
        );
        const blockMax = tf.max(tf.add(tf.expandDims(sp, -1), outside), 3) as tf.Tensor4D; // [B,A,T,N]
        const ep = tf.exp(tf.sub(sp, tf.matMul(blockMax, ind, false, true)));
        const blockSum = tf.matMul(tf.matMul(ep, ind), ind, false, true); // each token's block total
        // tokens of blocks a query may not see get 0 from `ep`; divide them by 1 more (an epsilon would make the gradient 0/0)
        const hidden = tf.tensor4d(
          past.map((m) => (m === 0 ? 0 : 1)),
          [b, 1, t, s],
        );
        const within = tf.div(ep, tf.add(blockSum, hidden));
        const weights = tf.div(tf.add(el, tf.mul(tf.matMul(eg, ind, false, true), within)), total);
        const out = linear(mergeHeads(tf.matMul(weights, v) as tf.Tensor4D), wo) as tf.Tensor3D;
        return ctx.useCache ? { out, cache: { k, v, ...f?.state } } : { out };
      },
    };
  },
};
