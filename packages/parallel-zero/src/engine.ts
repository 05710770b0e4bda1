import { microbatchesPerRank, YuanError } from '@yuan/core';
import { YuanModel } from '@yuan/model';
import {
  accumulateGrads,
  AdamW,
  batchLoss,
  disposeGrads,
  assertFiniteStep,
  clipScale,
  stepLearningRate,
  microBatchGrads,
  LayeredModel,
  layerwiseBackward,
  writeOptimizerShard,
  type CheckpointContents,
  type EngineFactory,
  type GradMap,
  type LayerRecompute,
  type OptimizerState,
  type StepMetrics,
  type TrainConfig,
  type TrainingEngine,
} from '@yuan/train';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex, type Batch } from '@yuan/data';
import { tf } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';
import { ShardedAdamW } from './sharded.js';
import { GradientSpace } from './space.js';

/** ZeRO stage: 0 replicated optimizer (gradient all-reduce); 1 optimizer states sharded; 2 gradients sharded too. */
export type ZeroStage = 0 | 1 | 2;

/** Options of the data-parallel engine. */
export interface DataParallelOptions {
  /** The data-parallel group (D ranks); this process is `group.rank`. */
  group: ProcessGroup;
  zero: ZeroStage;
  /**
   * What ZeRO 2's layer-by-layer forward keeps for its backward (`LayerRecompute` of @yuan/train): `none` (default)
   * each layer's autodiff tape, so no forward runs twice; `selective` the same but the op-by-op attention core's scores
   * are recomputed; `full` only each layer's input, the layer's forward run again in the backward. ZeRO 0/1 run one
   * backward over the whole model, which keeps everything (`none`).
   */
  recompute?: LayerRecompute;
  /**
   * ZeRO 2's gradient bucket size in elements (DeepSpeed's `reduce_bucket_size`): whole layers' gradients, the last
   * layer's first, are summed into a flat bucket until it holds at least this many, then it is reduce-scattered while
   * the backward goes on. Default: a quarter of the layers' parameters, at most 2^24. A positive integer, else
   * YuanError 'usage'.
   */
  reduceBucketElements?: number;
}

/** Bytes held by the engine's optimizer and gradient buffers, per rank (for the memory accounting tests and `yuan plan`). */
export interface DataParallelMemory {
  /** AdamW moments m and v held by this rank (bytes). */
  optimizerBytes: number;
  /** The gradient state kept across the step (bytes): the N-float accumulator under ZeRO 0/1, the N/D shard under ZeRO 2. */
  gradientBytes: number;
  /**
   * The largest set of not yet reduced gradients alive at once during a backward (bytes): all N under ZeRO 0/1 (one
   * backward over the whole model); under ZeRO 2 the bucket being filled and the last one sent (`reduceBucketElements`
   * each, about, or the tied embedding's; `yuan plan` simulates the same sequence), since each bucket is
   * reduce-scattered as soon as the layer-by-layer backward completes it while the next layer's backward runs.
   */
  gradientInFlightBytes: number;
}

/**
 * The data-parallel training engine with ZeRO optimizer sharding (Megatron's distributed optimizer; ZeRO, Rajbhandari et
 * al. 2020). Every rank holds the whole model; each step's M micro-batches (`train.gradAccumulation`, the global batch)
 * are split so rank r computes micro-batches r·M/D … (r+1)·M/D − 1, in the order the single process draws them.
 * Gradients (weighted 1/M) are all-reduced (ZeRO 0) or reduce-scattered (ZeRO 1: once per step over the whole space;
 * ZeRO 2: during a layer-by-layer backward over kept per-layer tapes, or with recomputation — the head's gradients, then
 * each layer's from the last, then the embedding's — summed into flat buckets of several layers
 * (`reduceBucketElements`), each bucket reduce-scattered once full while the backward goes on, so besides its 1/D shard
 * a rank holds a few buckets of unreduced gradients, never all of them; DeepSpeed ZeRO-2's `reduce_bucket_size`,
 * `reduce_scatter` and `overlap_comm`). The loss
 * and the squared gradient norm are all-reduced before any rank updates, so a non-finite value stops every rank at the
 * same step; each rank updates its shard of the parameters with its shard of the AdamW moments (weight decay decided
 * by parameter name), and the parameters are all-gathered bucket by bucket. Checkpoints: under ZeRO 1/2 every rank
 * writes its own optimizer shard file (`writeOptimizerShard`) and rank 0 commits after a barrier. With D = 1 the
 * losses are the single-process trainer's.
 * Errors: D not dividing M, a lost or silent peer (from the group, naming the rank), a non-finite loss.
 */
export function dataParallelEngine(options: DataParallelOptions): EngineFactory {
  return async (setup) => {
    const engine = new DataParallelEngine(options, setup.train, setup.totalSteps);
    await engine.open(setup);
    return engine;
  };
}

/** The model as the engine uses it: the whole model (ZeRO 0/1) or one part per layer (ZeRO 2's layer-by-layer backward). */
interface EngineModel {
  readonly params: Map<string, tf.Variable>;
  readonly parameterCount: number;
  loss(batch: Batch): tf.Scalar;
  weights(): Promise<Map<string, Float32Array>>;
  dispose(): void;
}

const EMBEDDING = 'model.embed_tokens.weight';
const FINAL_NORM = 'model.norm.weight';

/**
 * DeepSpeed's `reduce_bucket_size` for ZeRO 2 when `DataParallelOptions.reduceBucketElements` is not given: a quarter
 * of the layers' parameters (so that the bucket being filled and the one being reduced never hold all the gradients at
 * once), at most 2^24 elements (64 MiB of float32). `yuan plan` (@yuan/plan) uses the same rule.
 */
function defaultBucketElements(model: LayeredModel): number {
  const layers = model.layers.reduce((a, l) => a + l.parameterCount, 0);
  return Math.min(2 ** 24, Math.max(1, Math.ceil(layers / 4)));
}

/**
 * ZeRO 2's buckets, in the order the layer-by-layer backward completes them: the final norm and layers L−1 … 0 packed
 * greedily (whole layers; a bucket is closed once it holds at least `elements` values), then the tied embedding alone
 * (reduced twice a micro-batch, for the head's projection and for the lookup, so that its gradient is never held
 * through the backward). So a micro-batch sends about (layers' parameters / `elements`) + 2 messages instead of one per
 * layer + 3.
 */
function layeredBuckets(model: LayeredModel, elements: number): Array<Array<{ name: string; shape: number[] }>> {
  const entry = (name: string) => ({ name, shape: model.params.get(name)!.shape });
  const groups = [[FINAL_NORM], ...[...model.layers].reverse().map((layer) => [...layer.params.keys()])];
  const buckets: Array<Array<{ name: string; shape: number[] }>> = [];
  let open: Array<{ name: string; shape: number[] }> = [];
  let size = 0;
  for (const names of groups) {
    for (const n of names) {
      open.push(entry(n));
      size += model.params.get(n)!.size;
    }
    if (size >= elements) {
      buckets.push(open);
      open = [];
      size = 0;
    }
  }
  if (open.length) buckets.push(open);
  buckets.push([entry(EMBEDDING)]);
  return buckets;
}

class DataParallelEngine implements TrainingEngine {
  step = 0;
  private model!: EngineModel;
  private layered?: LayeredModel;
  private split!: PackedSplit;
  private loader!: BatchLoader;
  private resetPositions = true;
  /** The flat gradient space: ZeRO 0/1 one bucket (the whole model); ZeRO 2 one per parameter group (`layeredBuckets`). */
  private space!: GradientSpace;
  private sharded?: ShardedAdamW;
  private replicated?: AdamW;
  private optimizerStep = 0;
  private peakGradientBytes = 0;
  private layerCount = 0;

  constructor(
    private readonly options: DataParallelOptions,
    private readonly train: TrainConfig,
    private readonly totalSteps: number,
  ) {}

  get group(): ProcessGroup {
    return this.options.group;
  }

  /** Rank 0 writes metrics and checkpoints. */
  get writer(): boolean {
    return this.group.rank === 0;
  }

  get parameterCount(): number {
    return this.model.parameterCount;
  }

  async open(setup: Parameters<EngineFactory>[0]): Promise<void> {
    const d = this.group.size;
    const m = this.train.gradAccumulation;
    microbatchesPerRank(m, d);
    const index = readPackedIndex(setup.data);
    this.resetPositions = setup.train.resetPositionIds;
    this.split = PackedSplit.open(setup.data, index, 'train');
    this.loader = new BatchLoader(
      this.split,
      setup.train.seqLength,
      setup.train.microBatchSize,
      setup.seed,
      positionResetId(index, setup.train, setup.data),
    );
    const reset = this.resetPositions;
    this.layerCount = setup.config.model.numLayers;
    if (this.options.zero === 2) {
      const layered = setup.resume
        ? LayeredModel.fromWeights(setup.config, setup.attention, setup.resume.weights)
        : LayeredModel.init(setup.config, setup.attention, setup.seed);
      this.layered = layered;
      this.model = {
        params: layered.params,
        parameterCount: layered.parameterCount,
        loss: (b) => layered.loss(b, reset),
        weights: () => layered.weights(),
        dispose: () => layered.dispose(),
      };
      const elements = this.options.reduceBucketElements ?? defaultBucketElements(layered);
      if (!Number.isInteger(elements) || elements < 1)
        throw new YuanError('usage', `reduceBucketElements ${elements}: expected a positive integer`);
      this.space = new GradientSpace(this.group, layeredBuckets(layered, elements));
    } else {
      const whole = setup.resume
        ? YuanModel.fromWeights(setup.config, setup.attention, setup.resume.weights)
        : YuanModel.init(setup.config, setup.attention, setup.seed);
      this.model = {
        params: whole.params,
        parameterCount: whole.parameterCount,
        loss: (b) => batchLoss(whole, b, reset),
        weights: () => whole.weights(),
        dispose: () => whole.dispose(),
      };
      this.space = new GradientSpace(this.group, [whole.specs]);
    }
    const adam = {
      beta1: this.train.beta1,
      beta2: this.train.beta2,
      eps: this.train.eps,
      weightDecay: this.train.weightDecay,
    };
    if (this.options.zero === 0) this.replicated = new AdamW(adam);
    else this.sharded = new ShardedAdamW(this.space.slots, this.space.total, this.space.ranges, adam);
    if (setup.resume) this.restore(setup.resume);
  }

  private restore(c: CheckpointContents): void {
    this.step = c.step;
    this.optimizerStep = c.optimizer.step;
    this.loader.seek(c.data);
    if (this.replicated) {
      this.replicated.importState(this.model.params, c.optimizer);
      return;
    }
    this.sharded!.restore(c.optimizer.moments, c.optimizer.step);
  }

  /** Bytes of optimizer moments and of the gradient buffers this rank holds. */
  memory(): DataParallelMemory {
    const optimizerBytes = this.replicated ? 8 * this.space.total : this.sharded!.optimizerBytes;
    const gradientInFlightBytes = this.options.zero === 2 ? this.space.peakInFlightBytes : this.peakGradientBytes;
    return { optimizerBytes, gradientBytes: this.peakGradientBytes, gradientInFlightBytes };
  }

  private nextLr(): number {
    return stepLearningRate(this.train, this.step + 1, this.totalSteps);
  }

  /**
   * ZeRO 2: one micro-batch's backward, layer by layer, from dL/d(loss) = 1/M (so the gradients come weighted); each
   * group's gradients are handed to the gradient space
   * as soon as they exist, which reduce-scatters them while the backward goes on to the next layer (DeepSpeed's
   * `overlap_comm`, at most `GROUPS_IN_FLIGHT` groups at once) and adds this rank's pieces to its shard in the order the
   * groups were produced (deterministic sums). Returns the micro-batch's loss.
   */
  private async bucketedBackward(batch: Batch): Promise<number> {
    const weight = 1 / this.train.gradAccumulation;
    let first = true;
    try {
      const loss = await layerwiseBackward(
        this.layered!,
        batch,
        this.resetPositions,
        async (_, grads) => {
          // the previous micro-batch's last reductions went on under this one's forward; they end before this
          // backward's first group goes out (one backward's groups in flight at a time)
          if (first) await this.space.awaitInFlight();
          first = false;
          await this.space.reduceGroup(grads, 1);
        },
        this.options.recompute ?? 'none',
        weight,
      );
      // no drain here: the last groups' reduce-scatters go on under the next micro-batch's forward (the ranks meet
      // at most GROUPS_IN_FLIGHT groups behind, not at every micro-batch's end); `trainStep` drains before the shard
      return loss;
    } catch (e) {
      await this.space.settle();
      throw e;
    }
  }

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const d = this.group.size;
    const mTotal = this.train.gradAccumulation;
    const mine = mTotal / d;
    const first = this.group.rank * mine;
    const zero = this.options.zero;
    let local: GradMap | undefined;
    let gradShard: Float32Array | undefined;
    let loss = 0;
    let tokens = 0;
    const forwardsBefore = this.layered?.layerForwards ?? 0;
    for (let i = 0; i < mTotal; i++) {
      const batch = this.loader.next();
      tokens += batch.rows * batch.seqLength;
      if (i < first || i >= first + mine) continue;
      if (zero === 2) {
        loss += (await this.bucketedBackward(batch)) / mTotal;
        this.peakGradientBytes = Math.max(this.peakGradientBytes, 4 * this.space.shardLength);
        continue;
      }
      const r = microBatchGrads(this.model.params, () => this.model.loss(batch));
      loss += (await r.loss.data())[0] / mTotal;
      r.loss.dispose();
      local = accumulateGrads(local, r.grads, 1 / mTotal);
    }
    let full: Float32Array | undefined;
    if (zero === 2) {
      try {
        await this.space.drain();
      } catch (e) {
        await this.space.settle();
        throw e;
      }
      gradShard = this.space.takeShard();
    } else {
      this.peakGradientBytes = Math.max(this.peakGradientBytes, 4 * this.space.total);
      try {
        if (zero === 0) full = await this.space.reduceAll(local!, 'allReduce');
        else gradShard = await this.space.reduceAll(local!, 'reduceScatter');
      } finally {
        disposeGrads(local);
      }
    }
    // the loss and the squared gradient norm, reduced before any rank updates
    const own = full ?? gradShard!;
    let sq = 0;
    for (let k = 0; k < own.length; k++) sq += own[k] * own[k];
    // ZeRO 0/1: one tape over the whole model per micro-batch, each layer's forward once
    const forwards = this.layered ? this.layered.layerForwards - forwardsBefore : mine * this.layerCount;
    const reduced = await this.group.allReduce(new Float32Array([loss, zero === 0 ? 0 : sq, forwards]));
    const globalLoss = reduced[0];
    const norm = Math.sqrt(zero === 0 ? sq : reduced[1]);
    const step = this.step + 1;
    assertFiniteStep(globalLoss, norm, step);
    const scale = clipScale(norm, this.train.gradClip);
    const lr = this.nextLr();
    if (zero === 0) this.updateReplicated(full!, scale, lr);
    else await this.updateShard(gradShard!, scale, lr);
    this.step = step;
    const seconds = (performance.now() - t0) / 1000;
    const layerForwards = Math.round(reduced[2]);
    return {
      step,
      loss: globalLoss,
      lr,
      gradNorm: norm,
      tokens,
      tokensPerSecond: tokens / seconds,
      seconds,
      layerForwards,
      memory: { ...this.memory() },
    };
  }

  private updateReplicated(full: Float32Array, scale: number, lr: number): void {
    const grads: GradMap = new Map();
    for (const slot of this.space.slots) {
      const g = full.subarray(slot.offset, slot.offset + slot.size);
      grads.set(
        slot.name,
        tf.tidy(() => (scale === 1 ? tf.tensor(g, slot.shape) : tf.mul(tf.tensor(g, slot.shape), scale))),
      );
    }
    try {
      this.replicated!.update(this.model.params, grads, lr);
      this.optimizerStep = this.replicated!.step;
    } finally {
      disposeGrads(grads);
    }
  }

  private async updateShard(gradShard: Float32Array, scale: number, lr: number): Promise<void> {
    const all = new Float32Array(this.space.total);
    await this.sharded!.update(this.model.params, gradShard, scale, lr, all);
    this.optimizerStep = this.sharded!.step;
    await this.space.gather(all, this.model.params);
  }

  async evaluate(batches: readonly Batch[]): Promise<number> {
    if (batches.length === 0) return Number.NaN;
    let sum = 0;
    for (let i = this.group.rank; i < batches.length; i += this.group.size) {
      const l = this.model.loss(batches[i]);
      sum += (await l.data())[0];
      l.dispose();
    }
    const total = await this.group.allReduce(new Float32Array([sum]));
    return total[0] / batches.length;
  }

  async checkpoint(shardDir: string): Promise<CheckpointContents> {
    // the weights are the same on every rank; only the writer needs them
    const weights = this.writer ? await this.model.weights() : new Map<string, Float32Array>();
    let optimizer: OptimizerState;
    if (this.replicated) {
      optimizer = this.writer ? await this.replicated.exportState() : { step: this.optimizerStep, moments: new Map() };
    } else {
      // each rank writes its own shard; the barrier makes them all durable before rank 0 commits
      const { ranges, m, v } = await this.sharded!.shardState();
      await writeOptimizerShard(shardDir, {
        index: this.group.rank,
        count: this.group.size,
        slots: this.space.slots.map((s) => ({ name: s.name, size: s.size })),
        ranges,
        m,
        v,
      });
      await this.group.barrier();
      optimizer = { step: this.optimizerStep, moments: new Map(), shards: this.group.size };
    }
    return { step: this.step, weights, optimizer, data: this.loader.position() };
  }

  async dispose(failure?: Error): Promise<void> {
    // the run failed outside the engine (e.g. rank 0 could not write a checkpoint): the peers learn it now, not after
    // waiting out the timeout in the next collective
    // (a no-op when the transport already failed, e.g. because a peer was lost)
    if (failure)
      this.group.abort(new YuanError('rank', `rank ${this.group.rank} stopped: ${failure.message.split('\n')[0]}`));
    this.replicated?.dispose();
    this.sharded?.dispose();
    this.model?.dispose();
    this.split?.close();
  }
}
