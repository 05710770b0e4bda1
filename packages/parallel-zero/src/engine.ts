import { YuanError } from '@yuan/core';
import {
  accumulateGrads,
  AdamW,
  BatchLoader,
  batchLoss,
  disposeGrads,
  assertFiniteStep,
  clipScale,
  stepLearningRate,
  microBatchGrads,
  PackedSplit,
  readPackedIndex,
  YuanModel,
  type Batch,
  type CheckpointContents,
  type EngineFactory,
  type GradMap,
  type OptimizerState,
  type StepMetrics,
  type TrainConfig,
  type TrainingEngine,
} from '@yuan/model';
import { tf } from '@yuan/tensor';
import type { ProcessGroup } from './group.js';
import { allGatherParameters, flatLayout, flattenGrads, ShardedAdamW, type FlatSlot } from './sharded.js';

/** ZeRO stage: 0 replicated optimizer (gradient all-reduce); 1 optimizer states sharded; 2 gradients sharded too. */
export type ZeroStage = 0 | 1 | 2;

/** Options of the data-parallel engine. */
export interface DataParallelOptions {
  /** The data-parallel group (D ranks); this process is `group.rank`. */
  group: ProcessGroup;
  zero: ZeroStage;
}

/** Bytes held by the engine's optimizer and gradient buffers, per rank (for the memory accounting tests and `yuan plan`). */
export interface DataParallelMemory {
  /** AdamW moments m and v held by this rank (bytes). */
  optimizerBytes: number;
  /** The largest gradient buffer held between micro-batches (bytes): N floats under ZeRO 0/1, N/D under ZeRO 2. */
  gradientBytes: number;
}

/**
 * The data-parallel training engine with ZeRO optimizer sharding (Megatron's distributed optimizer; ZeRO, Rajbhandari et
 * al. 2020). Every rank holds the whole model; each step's M micro-batches (`train.gradAccumulation`, the global batch)
 * are split so rank r computes micro-batches r·M/D … (r+1)·M/D − 1, in the order the single process draws them.
 * Gradients (weighted 1/M) are all-reduced (ZeRO 0) or reduce-scattered (ZeRO 1 once per step; ZeRO 2 after every
 * micro-batch, so only a 1/D gradient shard is kept between micro-batches); the loss and the squared gradient norm are
 * all-reduced before any rank updates, so a non-finite value stops every rank at the same step; each rank updates its
 * shard of the parameters with its shard of the AdamW moments (weight decay decided by parameter name), and the
 * parameters are all-gathered. With D = 1 the losses are the single-process trainer's.
 * Errors: D not dividing M, a lost or silent peer (from the group, naming the rank), a non-finite loss.
 */
export function dataParallelEngine(options: DataParallelOptions): EngineFactory {
  return async (setup) => {
    const engine = new DataParallelEngine(options, setup.train, setup.totalSteps);
    await engine.open(setup);
    return engine;
  };
}

class DataParallelEngine implements TrainingEngine {
  step = 0;
  private model!: YuanModel;
  private split!: PackedSplit;
  private loader!: BatchLoader;
  private resetPositions = true;
  private slots: FlatSlot[] = [];
  private total = 0;
  private shard: [number, number] = [0, 0];
  private sharded?: ShardedAdamW;
  private replicated?: AdamW;
  private optimizerStep = 0;
  private peakGradientBytes = 0;

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
    if (m % d !== 0) throw new YuanError('usage', `--dp ${d} does not divide the ${m} micro-batches of a step (train.gradAccumulation / --microbatches): each rank must take M/D of them`);
    const index = readPackedIndex(setup.data);
    this.resetPositions = setup.train.resetPositionIds;
    this.split = PackedSplit.open(setup.data, index, 'train');
    this.loader = new BatchLoader(this.split, setup.train.seqLength, setup.train.microBatchSize, setup.seed, setup.train.resetPositionIds ? index.special.eod : undefined);
    this.model = setup.resume ? YuanModel.fromWeights(setup.config, setup.attention, setup.resume.weights) : YuanModel.init(setup.config, setup.attention, setup.seed);
    ({ slots: this.slots, total: this.total } = flatLayout(this.model.specs));
    this.shard = this.group.shardRange(this.total);
    const adam = { beta1: this.train.beta1, beta2: this.train.beta2, eps: this.train.eps, weightDecay: this.train.weightDecay };
    if (this.options.zero === 0) {
      this.replicated = new AdamW(adam);
    } else {
      this.sharded = new ShardedAdamW(this.slots, this.total, this.shard, adam);
    }
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

  /** Bytes of optimizer moments and of the gradient buffer this rank holds. */
  memory(): DataParallelMemory {
    const optimizerBytes = this.replicated ? 8 * this.total : this.sharded!.optimizerBytes;
    return { optimizerBytes, gradientBytes: this.peakGradientBytes };
  }

  private flatten(grads: GradMap): Float32Array {
    return flattenGrads(grads, this.slots, this.total);
  }

  private nextLr(): number {
    return stepLearningRate(this.train, this.step + 1, this.totalSteps);
  }

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const d = this.group.size;
    const mTotal = this.train.gradAccumulation;
    const mine = mTotal / d;
    const first = this.group.rank * mine;
    const zero = this.options.zero;
    let local: GradMap | undefined;
    let gradShard: Float32Array | undefined = zero === 2 ? new Float32Array(this.shard[1]) : undefined;
    let loss = 0;
    let tokens = 0;
    for (let i = 0; i < mTotal; i++) {
      const batch = this.loader.next();
      tokens += batch.rows * batch.seqLength;
      if (i < first || i >= first + mine) continue;
      const r = microBatchGrads(this.model.params, () => batchLoss(this.model, batch, this.resetPositions));
      loss += (await r.loss.data())[0] / mTotal;
      r.loss.dispose();
      if (zero === 2) {
        // reduce-scatter this micro-batch's gradients now: between micro-batches only the 1/D shard is kept
        const flat = this.flatten(r.grads);
        disposeGrads(r.grads);
        for (let k = 0; k < flat.length; k++) flat[k] /= mTotal;
        const part = await this.group.reduceScatter(flat);
        for (let k = 0; k < part.length; k++) gradShard![k] += part[k];
        this.peakGradientBytes = Math.max(this.peakGradientBytes, 4 * gradShard!.length);
      } else {
        local = accumulateGrads(local, r.grads, 1 / mTotal);
      }
    }
    let full: Float32Array | undefined;
    if (zero !== 2) {
      const flat = this.flatten(local!);
      disposeGrads(local);
      this.peakGradientBytes = Math.max(this.peakGradientBytes, 4 * flat.length);
      if (zero === 0) full = await this.group.allReduce(flat);
      else gradShard = new Float32Array(await this.group.reduceScatter(flat));
    }
    // the loss and the squared gradient norm, reduced before any rank updates
    const own = full ?? gradShard!;
    let sq = 0;
    for (let k = 0; k < own.length; k++) sq += own[k] * own[k];
    const reduced = await this.group.allReduce(new Float32Array([loss, zero === 0 ? 0 : sq]));
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
    return { step, loss: globalLoss, lr, gradNorm: norm, tokens, tokensPerSecond: tokens / seconds, seconds, memory: { ...this.memory() } };
  }

  private updateReplicated(full: Float32Array, scale: number, lr: number): void {
    const grads: GradMap = new Map();
    for (const slot of this.slots) {
      const g = full.subarray(slot.offset, slot.offset + slot.size);
      grads.set(slot.name, tf.tidy(() => (scale === 1 ? tf.tensor(g, slot.shape) : tf.mul(tf.tensor(g, slot.shape), scale))));
    }
    try {
      this.replicated!.update(this.model.params, grads, lr);
      this.optimizerStep = this.replicated!.step;
    } finally {
      disposeGrads(grads);
    }
  }

  private async updateShard(gradShard: Float32Array, scale: number, lr: number): Promise<void> {
    const all = new Float32Array(this.total);
    await this.sharded!.update(this.model.params, gradShard, scale, lr, all);
    this.optimizerStep = this.sharded!.step;
    await allGatherParameters(this.group, all, this.slots, this.model.params);
  }

  async evaluate(batches: readonly Batch[]): Promise<number> {
    if (batches.length === 0) return Number.NaN;
    let sum = 0;
    for (let i = this.group.rank; i < batches.length; i += this.group.size) {
      const l = batchLoss(this.model, batches[i], this.resetPositions);
      sum += (await l.data())[0];
      l.dispose();
    }
    const total = await this.group.allReduce(new Float32Array([sum]));
    return total[0] / batches.length;
  }

  async checkpoint(): Promise<CheckpointContents> {
    const weights = await this.model.weights();
    let optimizer: OptimizerState;
    if (this.replicated) {
      optimizer = await this.replicated.exportState();
    } else {
      // gather the moment shards (every rank takes part; each ends with the whole state)
      optimizer = { step: this.optimizerStep, moments: await this.sharded!.gatherMoments(this.group) };
    }
    return { step: this.step, weights, optimizer, data: this.loader.position() };
  }

  async dispose(): Promise<void> {
    this.replicated?.dispose();
    this.sharded?.dispose();
    this.model?.dispose();
    this.split?.close();
  }
}

