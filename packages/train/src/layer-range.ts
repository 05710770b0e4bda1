import { YuanError, type YuanConfig } from '@yuan/core';
import { recordTape, tf, type KeptTape, type TensorAttentionPlugin } from '@yuan/tensor';
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

/**
 * What a range's forward keeps for its backward (Megatron's `--recompute-granularity`): `full` keeps each layer's input
 * [B, T, H] and runs each layer's forward again inside its backward; `none` keeps each sub-part's autodiff tape (the
 * tensors its ops' gradients read: `recordTape` of @yuan/tensor), so no forward runs twice; `selective` is `none` except
 * that the op-by-op attention core keeps only Q, K, V and recomputes its [B, A, S, S] scores in the backward (with the
 * fused attention kernel, which keeps only its output and row log-sum-exp, it is `none`).
 */
export type LayerRecompute = 'none' | 'selective' | 'full';

/** One gradient computation of a backward: the function's value (when computed), dL/d(input) [B, T, H] when asked, the parameters' gradients. */
export interface GradientStep {
  value?: tf.Tensor;
  dx?: tf.Tensor3D;
  grads: GradMap;
}

/**
 * Runs one gradient computation of a backward and resolves with its result: the identity by default; a pipeline stage
 * measures each step's memory high-water mark with it.
 */
export type StepWrapper = (compute: () => GradientStep) => Promise<GradientStep>;

/**
 * What a forward keeps for its layer-by-layer backward: under `full` each layer's input and the last layer's output
 * [B, T, H]; under `none`/`selective` the tapes of the embedding, each layer and the head.
 */
export interface KeptActivations {
  /** `full`: `inputs[i]` is the input [B, T, H] of the range's layer i (the embedding's output, or the range's input); else empty. */
  inputs: tf.Tensor3D[];
  /** `full`: the last layer's output: the range's output, or the head's input (which `backward` needs) in a range with the head. */
  output?: tf.Tensor3D;
  /** `none`/`selective`: each sub-part's recorded forward, kept until its backward. */
  tapes?: KeptTapes;
}

/** The tapes of one micro-batch's forward through a range (`LayerRange.forwardKeeping` under `none`/`selective`). */
export interface KeptTapes {
  /** The embedding lookup (a range with the embedding): xs = [the tied embedding]. */
  embedding?: KeptTape;
  /** Layer i of the range: xs = [its input, ...its parameters in `params` order]. */
  layers: KeptTape[];
  /** The head and loss (a range with the head): xs = [the last layer's output, ...the head's parameters]. */
  head?: KeptTape;
}

/** What `forwardKeeping` returns: the kept activations and the forward's result (the caller owns both). */
export interface KeptForward extends KeptActivations {
  /** The range's output [B, T, H], or in a range with the head the mean masked loss (a scalar). */
  result: tf.Tensor;
}

/**
 * One micro-batch's queue of weight-gradient work left by `LayerRange.backwardInput` (the zero-bubble code's
 * `WeightGradStore`): per group (head, each layer from the last, embedding; or the whole range) a tape whose parameter
 * gradients were put off, with the upstream gradients and saved tensors they read. Run by `backwardWeights`.
 */
export interface DeferredWeights {
  work: Array<{ group: LayerwiseGroup; tape: KeptTape; names: string[]; offset: number }>;
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
      for (const layer of this.layers) x = this.layerForward(layer, x, batch);
      return this.head ? this.headLoss(x, batch) : x;
    });
  }

  /**
   * Decoder-layer forwards run so far (one per micro-batch per layer, another for each layer recomputed in a backward):
   * a step's difference is its forward work, which `recompute: none` keeps at one per layer and micro-batch.
   */
  layerForwards = 0;

  private layerForward(layer: YuanModel, x: tf.Tensor3D, batch: RangeBatch): tf.Tensor3D {
    this.layerForwards++;
    return layer.layers(x, { positions: batch.positions }).hidden;
  }

  /**
   * The forward keeping what `backward` needs under `recompute` (default `full`: only each layer's input, Megatron's
   * full recomputation; `none`/`selective`: each sub-part's tape, `LayerRecompute`). The caller owns every kept tensor
   * (free them with `release`) and the result; under `full` `inputs[0]` is `input` itself in a range without the
   * embedding, and in a range with the head the head's forward runs again in the backward.
   */
  forwardKeeping(batch: RangeBatch, input?: tf.Tensor3D, recompute: LayerRecompute = 'full'): KeptForward {
    if (recompute !== 'full') return this.forwardTaped(batch, input, recompute === 'selective');
    const inputs: tf.Tensor3D[] = [];
    let x = this.start(batch, input);
    for (const layer of this.layers) {
      inputs.push(x);
      x = this.layerForward(layer, x, batch);
    }
    if (!this.head) return { inputs, result: x };
    return { inputs, output: x, result: this.headLoss(x, batch) };
  }

  /** `none`/`selective`: records one tape per sub-part; each layer's output is the next one's recorded input. */
  private forwardTaped(batch: RangeBatch, input: tf.Tensor3D | undefined, selective: boolean): KeptForward {
    const tapes: KeptTapes = { layers: [] };
    const options = { selective };
    let x: tf.Tensor3D;
    try {
      if (this.embedding) {
        const ends = this.ends!;
        if (!batch.ids) throw new YuanError('internal', 'a range with the embedding needs the token ids');
        const ids = batch.ids;
        tapes.embedding = recordTape(() => ends.embed(ids), [ends.params.get(EMBEDDING)!], options);
        x = tapes.embedding.value as tf.Tensor3D;
      } else x = this.start(batch, input);
      for (const layer of this.layers) {
        const from = x;
        const tape = recordTape(() => this.layerForward(layer, from, batch), [from, ...layer.params.values()], options);
        tapes.layers.push(tape);
        x = tape.value as tf.Tensor3D;
        // the tape holds what its backward reads; the previous output is not the caller's (unless it is `input`)
        if (from !== input) from.dispose();
      }
      if (!this.head) return { inputs: [], tapes, result: x };
      const ends = this.ends!;
      const h = x;
      tapes.head = recordTape(() => this.headLoss(h, batch), [h, ...ends.params.values()], options);
      if (h !== input) h.dispose();
      return { inputs: [], tapes, result: tapes.head.value };
    } catch (e) {
      this.release({ inputs: [], tapes });
      throw e;
    }
  }

  /** Frees what a forward kept (not the range's input a caller passed in, which stays the caller's). */
  release(kept: KeptActivations, input?: tf.Tensor3D): void {
    tf.dispose([...kept.inputs, ...(kept.output ? [kept.output] : [])].filter((t) => t !== input));
    const t = kept.tapes;
    // tapes a split backward moved into its weight-gradient queue are no longer here
    if (t) for (const tape of [t.embedding, ...t.layers, t.head]) tape?.dispose();
  }

  /**
   * The backward of one micro-batch layer by layer, the last layer first, each layer's forward recomputed from its
   * kept input. The top is the loss of `kept.output` in a range with the head, else the upstream gradient `dy` =
   * dL/d(output) [B, T, H] (from the next pipeline stage; not disposed here). `onGrads` receives each group of gradients
   * as soon as it exists and owns them: the head's, then each layer's from the last, then (a range with the embedding)
   * the lookup's share of the tied embedding — so at most one group's fresh gradients are alive at a time, which lets a
   * data-parallel runtime reduce them bucket by bucket during the backward. `step` wraps every gradient computation.
   * Resolves with the loss (a range with the head under `full`, nats/token; under `none`/`selective` the loss is the
   * forward's result) and dL/d(input) [B, T, H] (a range without the embedding; the caller owns it). Kept inputs stay the
   * caller's; kept tapes are used up (freed) by the backward. `lossScale` (a range with the head; default 1) is
   * dL/d(loss): every gradient comes multiplied by it (a data-parallel micro-batch's weight 1/M, applied once at the top
   * instead of to each gradient afterwards).
   */
  async backward(
    batch: RangeBatch,
    kept: KeptActivations,
    dy: tf.Tensor3D | undefined,
    onGrads: GradientSink,
    step: StepWrapper = identity,
    lossScale = 1,
  ): Promise<{ loss?: number; dx?: tf.Tensor3D }> {
    if (this.head === (dy !== undefined))
      throw new YuanError(
        'internal',
        this.head
          ? 'a range with the head starts its backward from the loss'
          : 'a range without the head needs the upstream gradient',
      );
    // the upstream gradient of the loss (undefined: ones); freed at the end
    const top = this.head && lossScale !== 1 ? tf.scalar(lossScale) : undefined;
    try {
      if (kept.tapes) return await this.backwardTaped(kept.tapes, dy, onGrads, step, top);
      return await this.backwardRecomputed(batch, kept, dy, onGrads, step, top);
    } finally {
      top?.dispose();
    }
  }

  /** `backward` under `full`: each layer's forward run again from its kept input inside its gradient computation. */
  private async backwardRecomputed(
    batch: RangeBatch,
    kept: KeptActivations,
    dy: tf.Tensor3D | undefined,
    onGrads: GradientSink,
    step: StepWrapper,
    top: tf.Scalar | undefined,
  ): Promise<{ loss?: number; dx?: tf.Tensor3D }> {
    // the gradient flowing down, once this backward made it (the caller's dy is never disposed here)
    let owned: tf.Tensor3D | undefined;
    let loss: number | undefined;
    try {
      if (this.head) {
        const ends = this.ends!;
        const h = kept.output;
        if (!h) throw new YuanError('internal', "a range with the head needs the last layer's output kept");
        const r = await step(() =>
          gradientsOf(() => this.headLoss(h, batch), h, ends.params, [...ends.params.keys()], top),
        );
        loss = (await r.value!.data())[0];
        r.value!.dispose();
        owned = r.dx;
        await onGrads({ kind: 'head' }, r.grads);
      }
      for (let l = this.layers.length - 1; l >= 0; l--) {
        const layer = this.layers[l];
        const input = kept.inputs[l];
        const upstream = owned ?? dy;
        const r = await step(() =>
          gradientsOf(
            () => this.layerForward(layer, input, batch),
            input,
            layer.params,
            [...layer.params.keys()],
            upstream,
          ),
        );
        r.value?.dispose();
        owned?.dispose();
        owned = r.dx;
        await onGrads({ kind: 'layer', layer: layer.part.firstLayer }, r.grads);
      }
      if (this.embedding) {
        const ends = this.ends!;
        const upstream = owned ?? dy;
        const ids = batch.ids!;
        const r = await step(() => gradientsOf(() => ends.embed(ids), undefined, ends.params, [EMBEDDING], upstream));
        r.value?.dispose();
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
   * `backward` under `none`/`selective`: each kept tape backpropagated in turn (head, layers from the last, embedding),
   * no forward run again; the groups, their order and ownership are `backward`'s. Each tape is freed once used.
   */
  private async backwardTaped(
    tapes: KeptTapes,
    dy: tf.Tensor3D | undefined,
    onGrads: GradientSink,
    step: StepWrapper,
    top: tf.Scalar | undefined,
  ): Promise<{ loss?: number; dx?: tf.Tensor3D }> {
    let owned: tf.Tensor3D | undefined;
    const run = (tape: KeptTape, names: string[], withInput: boolean, upstream: tf.Tensor | undefined) =>
      step(() => {
        const vars = names.map((n) => this.params.get(n)!);
        const grads = tape.backward(upstream);
        tape.dispose();
        const out: GradMap = new Map();
        const off = withInput ? 1 : 0;
        for (const [i, n] of names.entries()) out.set(n, grads[i + off] ?? tf.zerosLike(vars[i]));
        const dx = withInput ? ((grads[0] as tf.Tensor | undefined) ?? tf.zeros(tape.value.shape)) : undefined;
        return { dx: dx as tf.Tensor3D | undefined, grads: out };
      });
    try {
      if (tapes.head) {
        const names = [...this.ends!.params.keys()];
        const r = await run(tapes.head, names, true, top);
        owned = r.dx;
        await onGrads({ kind: 'head' }, r.grads);
      }
      for (let l = this.layers.length - 1; l >= 0; l--) {
        const layer = this.layers[l];
        const r = await run(tapes.layers[l], [...layer.params.keys()], true, owned ?? dy);
        owned?.dispose();
        owned = r.dx;
        await onGrads({ kind: 'layer', layer: layer.part.firstLayer }, r.grads);
      }
      if (tapes.embedding) {
        const r = await run(tapes.embedding, [EMBEDDING], false, owned ?? dy);
        owned?.dispose();
        owned = undefined;
        await onGrads({ kind: 'embedding' }, r.grads);
        return {};
      }
      const dx = owned ?? (dy && tf.clone(dy));
      owned = undefined;
      return { dx };
    } finally {
      owned?.dispose();
      for (const tape of [tapes.embedding, ...tapes.layers, tapes.head]) tape?.dispose();
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
    r.value?.dispose();
    try {
      await onGrads({ kind: 'range' }, r.grads);
    } catch (e) {
      r.dx?.dispose();
      throw e;
    }
    return { dx: r.dx };
  }

  /**
   * The input half of a split backward (zero-bubble `I`): dL/d(input) [B, T, H] of one micro-batch now, every
   * parameter gradient put off into the returned `DeferredWeights` (the micro-batch's queue of weight-gradient work,
   * as the zero-bubble code's `WeightGradStore`), which `backwardWeights` runs later. Under `none`/`selective` the kept
   * tapes are backpropagated with their parameters deferred (`KeptTape.backward(dy, { defer })`: no forward runs
   * again); under `full` (kept `inputs`) each layer's forward is recorded again from its kept input and backpropagated
   * the same way; with `stage` recompute (`kept` undefined, `input` the range's input) one tape over the whole range is.
   * `dy`, the top and the result are `backward`'s (the loss is the forward's result, not returned); kept tapes move into
   * the queue (the caller's `kept` must not be released for them: `release` skips moved tapes), kept inputs stay the
   * caller's. `backwardInput` then `backwardWeights` gives `backward`'s gradients exactly (the same ops, split).
   */
  async backwardInput(
    batch: RangeBatch,
    kept: KeptActivations | undefined,
    input: tf.Tensor3D | undefined,
    dy: tf.Tensor3D | undefined,
    step: StepWrapper = identity,
  ): Promise<{ dx?: tf.Tensor3D; deferred: DeferredWeights }> {
    if (this.head === (dy !== undefined))
      throw new YuanError(
        'internal',
        this.head
          ? 'a range with the head starts its backward from the loss'
          : 'a range without the head needs the upstream gradient',
      );
    const deferred: DeferredWeights = { work: [] };
    // backpropagates `tape` now for its first x (the input) when `withInput`, its parameters put off
    const split = (tape: KeptTape, group: LayerwiseGroup, names: string[], withInput: boolean, upstream?: tf.Tensor) =>
      step(() => {
        const off = withInput ? 1 : 0;
        const grads = tape.backward(upstream, { defer: names.map((_, i) => i + off) });
        deferred.work.push({ group, tape, names, offset: off });
        const dx = withInput ? ((grads[0] as tf.Tensor | undefined) ?? tf.zeros(tape.value.shape)) : undefined;
        return { dx: dx as tf.Tensor3D | undefined, grads: new Map() };
      });
    let owned: tf.Tensor3D | undefined;
    // under `full`/`stage`: the tapes recorded here, and their values (the loss's is read by its backward)
    const values: tf.Tensor[] = [];
    const record = (f: () => tf.Tensor, xs: tf.Tensor[]) => {
      const tape = recordTape(f, xs);
      values.push(tape.value);
      return tape;
    };
    try {
      if (!kept) {
        const x = this.embedding ? undefined : input;
        if (!this.embedding && !x) throw new YuanError('internal', 'a range without the embedding needs its input');
        const names = [...this.params.keys()];
        const tape = record(() => this.forward(batch, x), [...(x ? [x] : []), ...this.params.values()]);
        owned = (await split(tape, { kind: 'range' }, names, x !== undefined, dy)).dx;
      } else {
        const tapes = kept.tapes ?? {
          layers: [] as KeptTape[],
          head: undefined as KeptTape | undefined,
          embedding: undefined as KeptTape | undefined,
        };
        const taped = kept.tapes !== undefined;
        if (this.head) {
          const ends = this.ends!;
          let tape = tapes.head;
          if (!taped) {
            const h = kept.output;
            if (!h) throw new YuanError('internal', "a range with the head needs the last layer's output kept");
            tape = record(() => this.headLoss(h, batch), [h, ...ends.params.values()]);
          }
          owned = (await split(tape!, { kind: 'head' }, [...ends.params.keys()], true)).dx;
          if (taped) tapes.head = undefined;
        }
        for (let l = this.layers.length - 1; l >= 0; l--) {
          const layer = this.layers[l];
          let tape = tapes.layers[l];
          if (!taped) {
            const x = kept.inputs[l];
            tape = record(() => this.layerForward(layer, x, batch), [x, ...layer.params.values()]);
          }
          const r = await split(
            tape,
            { kind: 'layer', layer: layer.part.firstLayer },
            [...layer.params.keys()],
            true,
            owned ?? dy,
          );
          if (taped) tapes.layers[l] = undefined as unknown as KeptTape;
          owned?.dispose();
          owned = r.dx;
        }
        if (this.embedding) {
          const ends = this.ends!;
          let tape = tapes.embedding;
          if (!taped) {
            const ids = batch.ids!;
            tape = record(() => ends.embed(ids), [ends.params.get(EMBEDDING)!]);
          }
          await split(tape!, { kind: 'embedding' }, [EMBEDDING], false, owned ?? dy);
          if (taped) tapes.embedding = undefined;
          owned?.dispose();
          owned = undefined;
          return { deferred };
        }
      }
      if (this.embedding) {
        owned?.dispose();
        owned = undefined;
        return { deferred };
      }
      const dx = owned ?? (dy && tf.clone(dy));
      owned = undefined;
      return { dx, deferred };
    } catch (e) {
      this.releaseDeferred(deferred);
      throw e;
    } finally {
      owned?.dispose();
      tf.dispose(values);
    }
  }

  /**
   * The weight half of a split backward (zero-bubble `W`): runs the queue `backwardInput` left, in `backward`'s group
   * order (head, layers from the last, embedding; `range` under stage recompute), handing each group's parameter
   * gradients to `onGrads` (which owns them; a parameter not reached gets zeros). Frees the queue.
   */
  async backwardWeights(deferred: DeferredWeights, onGrads: GradientSink, step: StepWrapper = identity): Promise<void> {
    const work = deferred.work;
    deferred.work = [];
    try {
      while (work.length) {
        const { group, tape, names, offset } = work[0];
        const r = await step(() => {
          const grads = tape.backwardDeferred();
          tape.dispose();
          const out: GradMap = new Map();
          for (const [i, n] of names.entries()) out.set(n, grads[i + offset] ?? tf.zerosLike(this.params.get(n)!));
          return { grads: out };
        });
        work.shift();
        await onGrads(group, r.grads);
      }
    } finally {
      for (const w of work) w.tape.dispose();
    }
  }

  /** Frees a weight-gradient queue that will not run (a failed step). */
  releaseDeferred(deferred: DeferredWeights): void {
    for (const w of deferred.work) w.tape.dispose();
    deferred.work = [];
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
