import { YuanError } from '@yuan/core';
import {
  accumulateGrads,
  AdamW,
  BatchLoader,
  batchLoss,
  disposeGrads,
  learningRate,
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
import { adamwStep, tf } from '@yuan/tensor';
import type { ProcessGroup } from './group.js';

/** ZeRO stage: 0 replicated optimizer (gradient all-reduce); 1 optimizer states sharded; 2 gradients sharded too. */
export type ZeroStage = 0 | 1 | 2;

/** Options of the data-parallel engine. */
export interface DataParallelOptions {
  /** The data-parallel group (D ranks); this process is `group.rank`. */
  group: ProcessGroup;
  zero: ZeroStage;
}

/** One parameter's place in the flat parameter space [0, N) (model order). */
interface Slot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  /** Decoupled weight decay applies (parameters with more than one dimension, decided per parameter, as Megatron). */
  decay: boolean;
}

/** The part of one parameter that falls in this rank's shard, with its AdamW moments. */
interface Segment {
  slot: Slot;
  /** Offset inside the parameter. */
  from: number;
  length: number;
  /** Offset inside the shard. */
  at: number;
  m: tf.Variable;
  v: tf.Variable;
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
  private slots: Slot[] = [];
  private total = 0;
  private shard: [number, number] = [0, 0];
  private segments: Segment[] = [];
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
    let offset = 0;
    for (const s of this.model.specs) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      this.slots.push({ name: s.name, shape: [...s.shape], offset, size, decay: s.shape.length > 1 });
      offset += size;
    }
    this.total = offset;
    this.shard = this.group.shardRange(this.total);
    const adam = { beta1: this.train.beta1, beta2: this.train.beta2, eps: this.train.eps, weightDecay: this.train.weightDecay };
    if (this.options.zero === 0) {
      this.replicated = new AdamW(adam);
    } else {
      const [start, length] = this.shard;
      for (const slot of this.slots) {
        const from = Math.max(start, slot.offset);
        const to = Math.min(start + length, slot.offset + slot.size);
        if (to <= from) continue;
        this.segments.push({ slot, from: from - slot.offset, length: to - from, at: from - start, m: tf.variable(tf.zeros([to - from]), false), v: tf.variable(tf.zeros([to - from]), false) });
      }
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
    for (const seg of this.segments) {
      for (const [which, target] of [['m', seg.m], ['v', seg.v]] as const) {
        const full = c.optimizer.moments.get(`${which}.${seg.slot.name}`);
        if (!full || full.length !== seg.slot.size) throw new YuanError('checkpoint', `the optimizer state has no ${which} moment of ${seg.slot.name} with ${seg.slot.size} values`);
        target.assign(tf.tensor1d(full.subarray(seg.from, seg.from + seg.length)));
      }
    }
  }

  /** Bytes of optimizer moments and of the gradient buffer this rank holds. */
  memory(): DataParallelMemory {
    const optimizerBytes = this.replicated ? 8 * this.total : this.segments.reduce((a, s) => a + 8 * s.length, 0);
    return { optimizerBytes, gradientBytes: this.peakGradientBytes };
  }

  private flatten(grads: GradMap): Float32Array {
    const flat = new Float32Array(this.total);
    for (const slot of this.slots) flat.set(grads.get(slot.name)!.dataSync() as Float32Array, slot.offset);
    return flat;
  }

  private nextLr(): number {
    const c = this.train;
    return learningRate(this.step + 1, { lr: c.lr, minLr: c.minLr, warmupSteps: c.warmupSteps, decaySteps: c.decaySteps ?? this.totalSteps });
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
    if (!Number.isFinite(globalLoss) || !Number.isFinite(norm)) {
      const what = Number.isFinite(globalLoss) ? `gradient norm is ${norm} (loss ${globalLoss.toFixed(4)})` : `loss is ${globalLoss}`;
      throw new YuanError('nan', `${what} at step ${step}: training stopped; parameters were not updated`);
    }
    const clip = this.train.gradClip;
    const scale = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1;
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
    this.optimizerStep += 1;
    const [start] = this.shard;
    const all = new Float32Array(this.total);
    const paramShard = all.subarray(start, start + this.shard[1]);
    for (const seg of this.segments) {
      const variable = this.model.params.get(seg.slot.name)!;
      const [p2, m2, v2] = tf.tidy(() => {
        const p = tf.slice(tf.reshape(variable, [-1]), [seg.from], [seg.length]);
        let g: tf.Tensor = tf.tensor1d(gradShard.subarray(seg.at, seg.at + seg.length));
        if (scale !== 1) g = tf.mul(g, scale);
        const wd = seg.slot.decay ? this.train.weightDecay : 0;
        return adamwStep(p, g, seg.m, seg.v, { lr, beta1: this.train.beta1, beta2: this.train.beta2, eps: this.train.eps, weightDecay: wd, step: this.optimizerStep });
      });
      seg.m.assign(m2);
      seg.v.assign(v2);
      paramShard.set((await p2.data()) as Float32Array, seg.at);
      tf.dispose([p2, m2, v2]);
    }
    await this.group.allGather(all);
    for (const slot of this.slots) {
      this.model.params.get(slot.name)!.assign(tf.tensor(all.subarray(slot.offset, slot.offset + slot.size), slot.shape));
    }
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
      const [start] = this.shard;
      const mAll = new Float32Array(this.total);
      const vAll = new Float32Array(this.total);
      for (const seg of this.segments) {
        mAll.set((await seg.m.data()) as Float32Array, start + seg.at);
        vAll.set((await seg.v.data()) as Float32Array, start + seg.at);
      }
      await this.group.allGather(mAll);
      await this.group.allGather(vAll);
      const moments = new Map<string, Float32Array>();
      for (const slot of this.slots) {
        moments.set(`m.${slot.name}`, mAll.slice(slot.offset, slot.offset + slot.size));
        moments.set(`v.${slot.name}`, vAll.slice(slot.offset, slot.offset + slot.size));
      }
      optimizer = { step: this.optimizerStep, moments };
    }
    return { step: this.step, weights, optimizer, data: this.loader.position() };
  }

  async dispose(): Promise<void> {
    this.replicated?.dispose();
    for (const s of this.segments) {
      s.m.dispose();
      s.v.dispose();
    }
    this.model?.dispose();
    this.split?.close();
  }
}

