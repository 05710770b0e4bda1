import type { YuanConfig } from '@yuan/core';
import { tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { crossEntropy, YuanModel } from '@yuan/model';
import type { Batch } from '@yuan/data';
import type { GradMap } from './grads.js';

/**
 * The whole model held as one part per layer plus one part with the embedding and the head, so that a backward pass
 * can run one layer at a time (the per-parameter initialisation gives the same weights as `YuanModel.init`). `params`
 * holds every variable by fused name, in the order of the whole model's specs.
 */
export class LayeredModel {
  readonly params: Map<string, tf.Variable>;

  private constructor(
    /** Embedding and head (final RMSNorm + the tied projection): `model.embed_tokens.weight`, `model.norm.weight`. */
    readonly ends: YuanModel,
    /** One part per layer, layer 0 first. */
    readonly layers: YuanModel[],
  ) {
    this.params = new Map([...ends.params, ...layers.flatMap((l) => [...l.params])]);
  }

  /** Freshly initialised (the weights `YuanModel.init(config, attention, seed)` has). */
  static init(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, seed: number): LayeredModel {
    return LayeredModel.build(config, (part) => YuanModel.init(config, attention, seed, part));
  }

  /** Over given weights (fused names); a missing or misshapen weight is YuanError 'checkpoint'. */
  static fromWeights(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, weights: Map<string, Float32Array>): LayeredModel {
    return LayeredModel.build(config, (part) => YuanModel.fromWeights(config, attention, weights, part));
  }

  private static build(config: YuanConfig, make: (part: { embedding: boolean; head: boolean; firstLayer: number; endLayer: number }) => YuanModel): LayeredModel {
    const ends = make({ embedding: true, head: true, firstLayer: 0, endLayer: 0 });
    const layers: YuanModel[] = [];
    for (let l = 0; l < config.model.numLayers; l++) layers.push(make({ embedding: false, head: false, firstLayer: l, endLayer: l + 1 }));
    return new LayeredModel(ends, layers);
  }

  /** Scalar parameters of the whole model. */
  get parameterCount(): number {
    return this.ends.parameterCount + this.layers.reduce((a, l) => a + l.parameterCount, 0);
  }

  /** Current weights by fused name. */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  /** Mean masked loss of a batch (nats/token), as `batchLoss` of the whole model gives it. */
  loss(batch: Batch, resetPositions: boolean): tf.Scalar {
    return tf.tidy(() => {
      const { ids, positions, targets, mask } = batchTensors(batch, resetPositions);
      let x = this.ends.embed(ids);
      for (const layer of this.layers) x = layer.layers(x, { positions }).hidden;
      return crossEntropy(this.ends.head(x), targets, mask);
    });
  }

  /** Frees every parameter. */
  dispose(): void {
    this.ends.dispose();
    for (const l of this.layers) l.dispose();
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

/** Which gradients a `layerwiseBackward` callback receives: the head's, one layer's, or the embedding lookup's. */
export type LayerwiseGroup = { kind: 'head' } | { kind: 'layer'; layer: number } | { kind: 'embedding' };

/**
 * One micro-batch's loss and gradients computed layer by layer, the last layer first, with full activation
 * recomputation (only each layer's input [B, T, H] is kept from the forward; a layer's forward runs again inside its
 * backward, as Megatron's `--recompute-granularity full`). `onGrads` receives each group of gradients as soon as it
 * exists and owns (must dispose) them: first the head's (`model.norm.weight` and the projection's share of the tied
 * `model.embed_tokens.weight`), then layer L−1 … 0 (that layer's parameters), last the embedding lookup's share of
 * `model.embed_tokens.weight` — the two shares of the tied embedding add up to its gradient. So at most one group's
 * gradients are alive at a time (what lets ZeRO 2 reduce-scatter bucket by bucket during the backward).
 * Returns the loss (nats/token).
 */
export async function layerwiseBackward(
  model: LayeredModel,
  batch: Batch,
  resetPositions: boolean,
  onGrads: (group: LayerwiseGroup, grads: GradMap) => Promise<void>,
): Promise<number> {
  const { ids, positions, targets, mask } = batchTensors(batch, resetPositions);
  const inputs: tf.Tensor3D[] = [];
  let dy: tf.Tensor3D | undefined;
  try {
    let x = model.ends.embed(ids);
    for (const layer of model.layers) {
      inputs.push(x);
      x = layer.layers(x, { positions }).hidden;
    }
    inputs.push(x);
    const h = x;
    const head = gradientsOf(() => crossEntropy(model.ends.head(h), targets, mask), h, model.ends, ['model.norm.weight', 'model.embed_tokens.weight']);
    const loss = (await head.value.data())[0];
    head.value.dispose();
    dy = head.dx;
    await onGrads({ kind: 'head' }, head.grads);
    for (let l = model.layers.length - 1; l >= 0; l--) {
      const input = inputs[l];
      const layer = model.layers[l];
      const r = gradientsOf(() => layer.layers(input, { positions }).hidden, input, layer, [...layer.params.keys()], dy);
      r.value.dispose();
      dy.dispose();
      dy = r.dx;
      await onGrads({ kind: 'layer', layer: l }, r.grads);
    }
    const upstream = dy;
    const emb = gradientsOf(() => model.ends.embed(ids), undefined, model.ends, ['model.embed_tokens.weight'], upstream);
    emb.value.dispose();
    await onGrads({ kind: 'embedding' }, emb.grads);
    return loss;
  } finally {
    dy?.dispose();
    tf.dispose([...inputs, ids, targets, mask, ...(positions ? [positions] : [])]);
  }
}

/** Value of `f` and its gradients for `x` (when given) and the named variables of `part`, with upstream gradient `dy`. */
function gradientsOf(f: () => tf.Tensor, x: tf.Tensor3D | undefined, part: YuanModel, names: string[], dy?: tf.Tensor): { value: tf.Tensor; dx: tf.Tensor3D; grads: GradMap } {
  const vars = names.map((n) => part.param(n));
  const xs = x ? [x, ...vars] : vars;
  const { value, grads } = tf.engine().gradients(f, xs, dy as never, true);
  const off = x ? 1 : 0;
  const out: GradMap = new Map();
  for (const [i, n] of names.entries()) out.set(n, grads[i + off] ?? tf.zerosLike(vars[i]));
  return { value, dx: (x ? grads[0] : undefined) as tf.Tensor3D, grads: out };
}
