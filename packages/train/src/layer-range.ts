import { YuanError, type YuanConfig } from '@yuan/core';
import { tf, type TensorAttentionPlugin } from '@yuan/tensor';
import { crossEntropy, YuanModel, type ModelPart } from '@yuan/model';
import type { GradMap } from './grads.js';

const EMBEDDING = 'model.embed_tokens.weight';

/** The tensors of one micro-batch that a layer range reads, each [B, T]. */
export interface RangeBatch {
  /** Token ids (int32); read by a range that has the embedding. */
  ids?: tf.Tensor2D;
  /** Position ids (int32); undefined: 0..T−1 in every row. */
  positions?: tf.Tensor2D;
  /** Next-token targets (int32); read by a range that has the head. */
  targets?: tf.Tensor2D;
  /** Loss mask (float32, 1 = the token counts); read by a range that has the head. */
  mask?: tf.Tensor2D;
}

/**
 * Which gradients a layer range's backward hands over: the head's (the final norm and the output projection's share of
 * the tied embedding), one layer's (`layer` is the model's layer index), the embedding lookup's share of the tied
 * embedding, or — one tape over the whole range (`backwardWhole`) — every parameter's at once.
 */
export type LayerwiseGroup =
  { kind: 'head' } | { kind: 'layer'; layer: number } | { kind: 'embedding' } | { kind: 'range' };

/** Receives each group of gradients as soon as it exists; owns (must dispose) the tensors. */
export type GradientSink = (group: LayerwiseGroup, grads: GradMap) => Promise<void>;

/** One gradient computation of a backward: the function's value, dL/d(input) [B, T, H] when asked, the parameters' gradients. */
export interface GradientStep {
  value: tf.Tensor;
  dx?: tf.Tensor3D;
  grads: GradMap;
}

/**
 * Runs one gradient computation of a backward and resolves with its result: the identity by default; a pipeline stage
 * measures each step's memory high-water mark with it.
 */
export type StepWrapper = (compute: () => GradientStep) => Promise<GradientStep>;

/** What a forward keeps for its layer-by-layer backward: each layer's input, and the last layer's output [B, T, H]. */
export interface KeptActivations {
  /** `inputs[i]`: the input [B, T, H] of the range's layer i (the embedding's output, or the range's input). */
  inputs: tf.Tensor3D[];
  /** The last layer's output: the range's output, or the head's input (which `backward` needs) in a range with the head. */
  output?: tf.Tensor3D;
}

const identity: StepWrapper = async (compute) => compute();

/**
 * A contiguous part of the model held as one sub-part per layer plus one sub-part with the embedding and/or the head
 * (final RMSNorm + the tied projection), so that a backward can run one layer at a time (Megatron's full activation
 * recomputation). The whole model is one range (the data-parallel engine under ZeRO 2); a pipeline stage is another:
 * the first stage's has the embedding, the last stage's the head and loss. Per-parameter initialisation gives every
 * sub-part the weights `YuanModel.init(config, attention, seed)` has. `params` holds every variable by fused name, the
 * embedding/head sub-part's first, then layer by layer.
 */
export class LayerRange {
  readonly params: Map<string, tf.Variable>;

  protected constructor(
    /** The embedding and/or head sub-part; absent in a range of layers only (a middle pipeline stage). */
    readonly ends: YuanModel | undefined,
    /** One sub-part per layer, the range's first layer first. */
    readonly layers: readonly YuanModel[],
  ) {
    this.params = new Map([...(ends?.params ?? []), ...layers.flatMap((l) => [...l.params])]);
  }

  /** Freshly initialised: the part `part` of the weights `YuanModel.init(config, attention, seed)` has. */
  static init(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    seed: number,
    part: ModelPart,
  ): LayerRange {
    const { ends, layers } = LayerRange.parts(part, (p) => YuanModel.init(config, attention, seed, p));
    return new LayerRange(ends, layers);
  }

  /** The part `part` over given weights (fused names; others are ignored); a missing or misshapen weight is YuanError 'checkpoint'. */
  static fromWeights(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    weights: Map<string, Float32Array>,
    part: ModelPart,
  ): LayerRange {
    const { ends, layers } = LayerRange.parts(part, (p) => YuanModel.fromWeights(config, attention, weights, p));
    return new LayerRange(ends, layers);
  }

  /** The sub-parts of `part`: its embedding/head (when it has either) and one per layer. */
  protected static parts(
    part: ModelPart,
    make: (part: ModelPart) => YuanModel,
  ): { ends?: YuanModel; layers: YuanModel[] } {
    const ends =
      part.embedding || part.head
        ? make({ embedding: part.embedding, head: part.head, firstLayer: 0, endLayer: 0 })
        : undefined;
    const layers: YuanModel[] = [];
    for (let l = part.firstLayer; l < part.endLayer; l++)
      layers.push(make({ embedding: false, head: false, firstLayer: l, endLayer: l + 1 }));
    return { ends, layers };
  }

  /** Whether the range starts at the token embedding (it reads ids, not hidden states). */
  get embedding(): boolean {
    return this.ends?.part.embedding ?? false;
  }

  /** Whether the range ends with the head and the loss. */
  get head(): boolean {
    return this.ends?.part.head ?? false;
  }

  /** Scalar parameters of the range. */
  get parameterCount(): number {
    return (this.ends?.parameterCount ?? 0) + this.layers.reduce((a, l) => a + l.parameterCount, 0);
  }

  /** Current weights by fused name. */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  /** The mean masked loss (nats/token) of the head over the last layer's output `h` [B, T, H]. Needs the head. */
  headLoss(h: tf.Tensor3D, batch: RangeBatch): tf.Scalar {
    if (!this.head || !batch.targets)
      throw new YuanError('internal', 'the loss needs a range with the head and the targets');
    const { targets, mask } = batch;
    return tf.tidy(() => crossEntropy(this.ends!.head(h), targets, mask));
  }

  /** The range's input: the embedding of the ids, or `input` [B, T, H] (not copied). */
  private start(batch: RangeBatch, input: tf.Tensor3D | undefined): tf.Tensor3D {
    if (this.embedding) {
      if (!batch.ids) throw new YuanError('internal', 'a range with the embedding needs the token ids');
      return this.ends!.embed(batch.ids);
    }
    if (!input) throw new YuanError('internal', 'a range without the embedding needs its input hidden states');
    return input;
  }

  /**
   * The range's forward in one `tidy`, keeping nothing: from the ids (a range with the embedding) or `input` [B, T, H],
   * through the layers, to the output [B, T, H] or, in a range with the head, the mean masked loss (a scalar).
   */
  forward(batch: RangeBatch, input?: tf.Tensor3D): tf.Tensor {
    return tf.tidy(() => {
      let x = this.start(batch, input);
      for (const layer of this.layers) x = layer.layers(x, { positions: batch.positions }).hidden;
      return this.head ? this.headLoss(x, batch) : x;
    });
  }

  /**
   * The forward keeping what `backward` needs (Megatron's full recomputation: only each layer's input). The caller owns
   * every kept tensor; `inputs[0]` is `input` itself in a range without the embedding.
   */
  forwardKeeping(batch: RangeBatch, input?: tf.Tensor3D): Required<KeptActivations> {
    const inputs: tf.Tensor3D[] = [];
    let x = this.start(batch, input);
    for (const layer of this.layers) {
      inputs.push(x);
      x = layer.layers(x, { positions: batch.positions }).hidden;
    }
    return { inputs, output: x };
  }

  /**
   * The backward of one micro-batch layer by layer, the last layer first, each layer's forward recomputed from its
   * kept input. The top is the loss of `kept.output` in a range with the head, else the upstream gradient `dy` =
   * dL/d(output) [B, T, H] (from the next pipeline stage; not disposed here). `onGrads` receives each group of gradients
   * as soon as it exists and owns them: the head's, then each layer's from the last, then (a range with the embedding)
   * the lookup's share of the tied embedding — so at most one group's fresh gradients are alive at a time, which lets a
   * data-parallel runtime reduce them bucket by bucket during the backward. `step` wraps every gradient computation.
   * Resolves with the loss (a range with the head, nats/token) and dL/d(input) [B, T, H] (a range without the
   * embedding; the caller owns it). The kept tensors stay the caller's.
   */
  async backward(
    batch: RangeBatch,
    kept: KeptActivations,
    dy: tf.Tensor3D | undefined,
    onGrads: GradientSink,
    step: StepWrapper = identity,
  ): Promise<{ loss?: number; dx?: tf.Tensor3D }> {
    if (this.head === (dy !== undefined))
      throw new YuanError(
        'internal',
        this.head
          ? 'a range with the head starts its backward from the loss'
          : 'a range without the head needs the upstream gradient',
      );
    // the gradient flowing down, once this backward made it (the caller's dy is never disposed here)
    let owned: tf.Tensor3D | undefined;
    let loss: number | undefined;
    try {
      if (this.head) {
        const ends = this.ends!;
        const h = kept.output;
        if (!h) throw new YuanError('internal', "a range with the head needs the last layer's output kept");
        const r = await step(() => gradientsOf(() => this.headLoss(h, batch), h, ends.params, [...ends.params.keys()]));
        loss = (await r.value.data())[0];
        r.value.dispose();
        owned = r.dx;
        await onGrads({ kind: 'head' }, r.grads);
      }
      for (let l = this.layers.length - 1; l >= 0; l--) {
        const layer = this.layers[l];
        const input = kept.inputs[l];
        const upstream = owned ?? dy;
        const r = await step(() =>
          gradientsOf(
            () => layer.layers(input, { positions: batch.positions }).hidden,
            input,
            layer.params,
            [...layer.params.keys()],
            upstream,
          ),
        );
        r.value.dispose();
        owned?.dispose();
        owned = r.dx;
        await onGrads({ kind: 'layer', layer: layer.part.firstLayer }, r.grads);
      }
      if (this.embedding) {
        const ends = this.ends!;
        const upstream = owned ?? dy;
        const ids = batch.ids!;
        const r = await step(() => gradientsOf(() => ends.embed(ids), undefined, ends.params, [EMBEDDING], upstream));
        r.value.dispose();
        owned?.dispose();
        owned = undefined;
        await onGrads({ kind: 'embedding' }, r.grads);
        return { loss };
      }
      const dx = owned ?? (dy && tf.clone(dy));
      owned = undefined;
      return { loss, dx };
    } finally {
      owned?.dispose();
    }
  }

  /**
   * The backward of one micro-batch as one tape over the whole range, recomputing its forward from `input` (a range
   * without the embedding; none kept but the range's input): every parameter's gradient at once, handed to `onGrads`
   * as group `range`. The top is the loss (a range with the head) or `dy` [B, T, H]. Resolves with dL/d(input) (a
   * range without the embedding; the caller owns it).
   */
  async backwardWhole(
    batch: RangeBatch,
    input: tf.Tensor3D | undefined,
    dy: tf.Tensor3D | undefined,
    onGrads: GradientSink,
    step: StepWrapper = identity,
  ): Promise<{ dx?: tf.Tensor3D }> {
    if (this.head === (dy !== undefined))
      throw new YuanError(
        'internal',
        this.head
          ? 'a range with the head starts its backward from the loss'
          : 'a range without the head needs the upstream gradient',
      );
    const x = this.embedding ? undefined : input;
    const r = await step(() => gradientsOf(() => this.forward(batch, x), x, this.params, [...this.params.keys()], dy));
    r.value.dispose();
    try {
      await onGrads({ kind: 'range' }, r.grads);
    } catch (e) {
      r.dx?.dispose();
      throw e;
    }
    return { dx: r.dx };
  }

  /** Frees every parameter. */
  dispose(): void {
    this.ends?.dispose();
    for (const l of this.layers) l.dispose();
  }
}

/**
 * The value of `f` and its gradients for `x` (when given) and the named variables of `params`, with upstream gradient
 * `dy` (default: ones, for a scalar loss); a variable `f` does not reach gets zeros.
 */
function gradientsOf(
  f: () => tf.Tensor,
  x: tf.Tensor3D | undefined,
  params: ReadonlyMap<string, tf.Variable>,
  names: string[],
  dy?: tf.Tensor,
): GradientStep {
  const vars = names.map((n) => params.get(n)!);
  const xs = x ? [x, ...vars] : vars;
  const { value, grads } = tf.engine().gradients(f, xs, dy as never, true);
  const off = x ? 1 : 0;
  const out: GradMap = new Map();
  for (const [i, n] of names.entries()) out.set(n, grads[i + off] ?? tf.zerosLike(vars[i]));
  return { value, dx: x ? (grads[0] as tf.Tensor3D) : undefined, grads: out };
}
