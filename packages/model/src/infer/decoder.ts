import { YuanError, type YuanConfig } from '@yuan/core';
import {
  canDecode,
  DecodeOps,
  type AttentionDecodeLayer,
  type DecodeKernels,
  type DecodeRow,
  type StoredWeight,
  type TensorAttentionPlugin,
} from '@yuan/tensor';
import { attentionOptions, attentionSpec } from '../parameters.js';
import type { InferenceWeights } from './weights.js';

/** One sequence being decoded: its length so far and each layer's attention state (K/V cache, LFA's conv inputs). */
export interface DecodeSequence {
  length: number;
  readonly states: unknown[];
}

/** One item of a decode call: a sequence and the tokens to append to it. */
export interface DecodeItem {
  sequence: DecodeSequence;
  tokens: readonly number[];
}

interface Block {
  attention: AttentionDecodeLayer;
  inputNorm: Float32Array;
  postNorm: Float32Array;
  up: StoredWeight;
  gate: StoredWeight;
  down: StoredWeight;
}

/**
 * The decoder over stored weights: per layer one RMSNorm, the attention plugin's decode layer (its projections, RoPE and
 * the attention kernel over its cache), one RMSNorm and the SwiGLU MLP, every step a native kernel on plain arrays
 * (no tfjs). Rows of several sequences go through each linear weight together (batched decode reads each weight once).
 */
export class Decoder {
  private readonly blocks: Block[] = [];
  private readonly ops: DecodeOps;
  private readonly embed: StoredWeight;
  private readonly finalNorm: Float32Array;

  constructor(
    readonly config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    readonly weights: InferenceWeights,
    kernels: DecodeKernels,
  ) {
    if (!canDecode(attention))
      throw new YuanError('model', `attention plugin "${attention.name}" has no native decoder (createDecoder)`);
    this.ops = new DecodeOps(kernels);
    const linear = (name: string) => {
      const w = weights.linears.get(name);
      if (!w) throw new YuanError('checkpoint', `weights have no ${name}`);
      return w;
    };
    const vector = (name: string) => {
      const v = weights.vectors.get(name);
      if (!v) throw new YuanError('checkpoint', `weights have no ${name}`);
      return v;
    };
    this.embed = linear('model.embed_tokens');
    this.finalNorm = vector('model.norm.weight');
    const options = attentionOptions(config, attention);
    for (let l = 0; l < config.model.numLayers; l++) {
      const p = `model.layers.${l}.`;
      this.blocks.push({
        attention: attention.createDecoder(attentionSpec(config, l), options, {
          linear: (n) => linear(`${p}self_attn.${n}`),
          vector: (n) => vector(`${p}self_attn.${n}`),
        }),
        inputNorm: vector(`${p}input_layernorm.weight`),
        postNorm: vector(`${p}post_attention_layernorm.weight`),
        up: linear(`${p}mlp.up_proj`),
        gate: linear(`${p}mlp.gate_proj`),
        down: linear(`${p}mlp.down_proj`),
      });
    }
  }

  /**
   * A new, empty sequence. `positions`: how many positions it will hold at most, when known (prompt + new tokens, at
   * most maxPositions): the layers' K/V caches are allocated for them at once (`KvCache.forPositions`).
   */
  newSequence(positions?: number): DecodeSequence {
    const hint = positions === undefined ? undefined : Math.min(positions, this.config.model.maxPositions);
    return { length: 0, states: this.blocks.map((b) => b.attention.newState(hint)) };
  }

  /**
   * Appends each item's tokens to its sequence and returns logits: [items, vocab] for the last token of each item, or
   * [all tokens, vocab] with `allLogits`. Ids and lengths are checked (one-line errors).
   */
  forward(items: readonly DecodeItem[], allLogits = false): Float32Array {
    const { hiddenSize: hs, vocabSize, maxPositions, rmsNormEps: eps } = this.config.model;
    const rowsOf: { item: number; position: number }[] = [];
    items.forEach((it, i) => {
      if (it.tokens.length === 0) throw new YuanError('input', 'a decode item has no tokens');
      if (it.sequence.length + it.tokens.length > maxPositions) {
        throw new YuanError(
          'input',
          `sequence of ${it.sequence.length + it.tokens.length} tokens exceeds the model's maxPositions ${maxPositions}`,
        );
      }
      for (const id of it.tokens)
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
          throw new YuanError('input', `token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
      it.tokens.forEach((_, j) => rowsOf.push({ item: i, position: it.sequence.length + j }));
    });
    const n = rowsOf.length;
    let x = new Float32Array(n * hs);
    const row = new Float32Array(hs);
    let r = 0;
    for (const it of items) {
      for (const id of it.tokens) {
        this.embed.format.row(this.embed, id, row);
        x.set(row, r++ * hs);
      }
    }
    for (const [l, b] of this.blocks.entries()) {
      // the previous layer's scratch arrays are dead (x is the decoder's own): this layer's ops reuse them
      this.ops.release();
      const rows: DecodeRow[] = rowsOf.map((q) => ({ state: items[q.item].sequence.states[l], position: q.position }));
      const a = b.attention.forward(this.ops.rmsNorm(x, b.inputNorm, eps), rows, this.ops);
      for (let i = 0; i < x.length; i++) x[i] += a[i];
      const h = this.ops.rmsNorm(x, b.postNorm, eps);
      const [up, gate] = this.ops.linearPair(b.up, b.gate, h, n);
      const act = this.ops.swiglu(up, gate);
      const m = this.ops.linear(b.down, act, n);
      for (let i = 0; i < x.length; i++) x[i] += m[i];
    }
    for (const it of items) it.sequence.length += it.tokens.length;
    if (!allLogits) {
      const last = new Float32Array(items.length * hs);
      let end = 0;
      items.forEach((it, i) => {
        end += it.tokens.length;
        last.set(x.subarray((end - 1) * hs, end * hs), i * hs);
      });
      x = last;
    }
    this.ops.release();
    // the logits outlive this call: a fresh array, not scratch
    const rowsOut = x.length / hs;
    return this.ops.linear(
      this.embed,
      this.ops.rmsNorm(x, this.finalNorm, eps),
      rowsOut,
      new Float32Array(rowsOut * this.embed.out),
    );
  }
}
