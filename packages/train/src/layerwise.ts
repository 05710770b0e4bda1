import type { YuanConfig } from '@yuan/core';
import { tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { wholeModel, YuanModel, type InferenceWeights } from '@yuan/model';
import type { Batch } from '@yuan/data';
import { LayerRange, type GradientSink, type KeptForward, type LayerRecompute } from './layer-range.js';

/**
 * The whole model as one layer range (`LayerRange`): one part per layer plus one part with the embedding and the head,
 * so that a backward pass can run one layer at a time (the per-parameter initialisation gives the same weights as
 * `YuanModel.init`). `params` holds every variable by fused name.
 */
export class LayeredModel extends LayerRange {
  /** Freshly initialised (the weights `YuanModel.init(config, attention, seed)` has). */
  static override init(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, seed: number): LayeredModel {
    const { ends, layers } = LayerRange.parts(wholeModel(config), (part) =>
      YuanModel.init(config, attention, seed, part),
    );
    return new LayeredModel(ends, layers);
  }

  /** Over given weights (fused names); a missing or misshapen weight is YuanError 'checkpoint'. */
  static override fromWeights(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    weights: Map<string, Float32Array>,
  ): LayeredModel {
    const { ends, layers } = LayerRange.parts(wholeModel(config), (part) =>
      YuanModel.fromWeights(config, attention, weights, part),
    );
    return new LayeredModel(ends, layers);
  }

  /**
   * Over a base held in its weight formats (`YuanModel.fromStoredWeights` per part: the decoder's linears stay packed,
   * bf16/int8/int4, and their products run on the stored weights), for a frozen base that recomputes layer by layer.
   * A missing weight is YuanError 'checkpoint'.
   */
  static fromStoredWeights(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    stored: InferenceWeights,
  ): LayeredModel {
    const { ends, layers } = LayerRange.parts(wholeModel(config), (part) =>
      YuanModel.fromStoredWeights(config, attention, stored, part),
    );
    return new LayeredModel(ends, layers);
  }

  /** Mean masked loss of a batch (nats/token), as `batchLoss` of the whole model gives it. */
  loss(batch: Batch, resetPositions: boolean): tf.Scalar {
    return tf.tidy(() => this.forward(batchTensors(batch, resetPositions)) as tf.Scalar);
  }
}

function batchTensors(batch: Batch, resetPositions: boolean) {
  const shape: [number, number] = [batch.rows, batch.seqLength];
  return {
    ids: tf.tensor2d(batch.ids, shape, 'int32'),
    positions: resetPositions ? tf.tensor2d(batch.positions, shape, 'int32') : undefined,
    targets: tf.tensor2d(batch.targets, shape, 'int32'),
    mask: tf.tensor2d(batch.mask, shape),
  };
}

/**
 * One micro-batch's loss and gradients computed layer by layer over the whole model (`LayerRange.backward` from the
 * loss). `recompute` (default `full`) says what the forward keeps: `full` only each layer's input [B, T, H] (a layer's
 * forward runs again inside its backward, as Megatron's `--recompute-granularity full`); `none`/`selective` each
 * layer's autodiff tape, so no forward runs twice (`LayerRecompute`). `onGrads` receives each group of gradients as
 * soon as it exists and owns (must dispose) them: first the head's (`model.norm.weight` and the projection's share of
 * the tied `model.embed_tokens.weight`), then layer L−1 … 0 (that layer's parameters), last the embedding lookup's
 * share of `model.embed_tokens.weight` — the two shares of the tied embedding add up to its gradient. So at most one
 * group's gradients are alive at a time (what lets ZeRO 2 reduce-scatter bucket by bucket during the backward).
 * `lossScale` (default 1) multiplies every gradient (dL/d(loss), `LayerRange.backward`). Returns the loss (nats/token).
 */
export async function layerwiseBackward(
  model: LayeredModel,
  batch: Batch,
  resetPositions: boolean,
  onGrads: GradientSink,
  recompute: LayerRecompute = 'full',
  lossScale = 1,
): Promise<number> {
  const tensors = batchTensors(batch, resetPositions);
  let kept: KeptForward | undefined;
  try {
    kept = model.forwardKeeping(tensors, undefined, recompute);
    const loss = (await kept.result.data())[0];
    await model.backward(tensors, kept, undefined, onGrads, undefined, lossScale);
    return loss;
  } finally {
    if (kept) {
      model.release(kept);
      kept.result.dispose();
    }
    tf.dispose(Object.values(tensors).filter((t): t is tf.Tensor2D => t !== undefined));
  }
}
