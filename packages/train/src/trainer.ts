import { tf } from '@yuan/tensor';
import { crossEntropy, YuanModel } from '@yuan/model';
import { AdamW } from './adamw.js';
import type { TrainConfig } from './config.js';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex, type Batch } from '@yuan/data';
import type { EngineFactory, StepMetrics, TrainingEngine } from './engine.js';
import type { CheckpointContents } from './state.js';
import {
  accumulateGrads,
  assertFiniteStep,
  clipGrads,
  disposeGrads,
  gradNorm,
  microBatchGrads,
  type GradMap,
} from './grads.js';
import { stepLearningRate } from './schedule.js';

/** The masked next-token loss of a batch (a scalar; the caller disposes it). */
export function batchLoss(model: YuanModel, batch: Batch, resetPositions: boolean): tf.Scalar {
  return tf.tidy(() => {
    const shape: [number, number] = [batch.rows, batch.seqLength];
    const ids = tf.tensor2d(batch.ids, shape, 'int32');
    const positions = resetPositions ? tf.tensor2d(batch.positions, shape, 'int32') : undefined;
    const { logits } = model.forward(ids, { positions });
    return crossEntropy(logits, tf.tensor2d(batch.targets, shape, 'int32'), tf.tensor2d(batch.mask, shape));
  });
}

/**
 * What a trainer optimizes: the variables by name, their values for a checkpoint, and their scalar count. A model is
 * one (all its parameters); an adapter over a frozen model (`AdapterModule`) is another.
 */
export interface TrainableSet {
  readonly params: Map<string, tf.Variable>;
  weights(): Promise<Map<string, Float32Array>>;
  readonly parameterCount: number;
}

/**
 * The single-process trainer: AdamW over all parameters (or over `trainable`, the rest frozen), warmup + cosine schedule, clipping, gradient accumulation.
 * A step is built from separable parts (micro-batch gradients, accumulation, clipping, optimizer update), so a
 * parallel trainer can recombine them.
 */
export class Trainer implements TrainingEngine {
  /** Completed optimizer steps. */
  step = 0;
  readonly optimizer: AdamW;
  /** Called by `dispose` after the optimizer is freed (the engine factory frees the model and data here). */
  onDispose?: () => void;

  constructor(
    readonly model: YuanModel,
    readonly config: TrainConfig,
    /** Total steps of the run (the cosine decays to `minLr` here unless `decaySteps` is set). */
    readonly totalSteps: number,
    readonly loader: BatchLoader,
    /** What the optimizer updates, checkpoints hold and `parameterCount` counts; default the whole model. */
    readonly trainable: TrainableSet = model,
  ) {
    this.optimizer = new AdamW({
      beta1: config.beta1,
      beta2: config.beta2,
      eps: config.eps,
      weightDecay: config.weightDecay,
    });
  }

  /** The learning rate of the next step. */
  nextLr(): number {
    return stepLearningRate(this.config, this.step + 1, this.totalSteps);
  }

  /** Loss and accumulated gradients over `gradAccumulation` micro-batches (the mean of their losses). */
  async accumulatedGrads(): Promise<{ loss: number; grads: GradMap; tokens: number }> {
    const k = this.config.gradAccumulation;
    let grads: GradMap | undefined;
    let loss = 0;
    let tokens = 0;
    for (let i = 0; i < k; i++) {
      const batch = this.loader.next();
      const r = microBatchGrads(this.trainable.params, () =>
        batchLoss(this.model, batch, this.config.resetPositionIds),
      );
      loss += (await r.loss.data())[0] / k;
      r.loss.dispose();
      grads = accumulateGrads(grads, r.grads, 1 / k);
      tokens += batch.rows * batch.seqLength;
    }
    return { loss, grads: grads!, tokens };
  }

  /**
   * One optimizer step. A loss or gradient norm that is not finite stops the run with an error naming the step,
   * before any parameter changes.
   */
  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const { loss, grads, tokens } = await this.accumulatedGrads();
    const step = this.step + 1;
    try {
      let norm: number;
      const lr = this.nextLr();
      if (this.config.postValidate) {
        // step first, check the norm after (rolled back when it is not finite or over the clip)
        assertFiniteStep(loss, 0, step);
        const r = await this.optimizer.postValidatedUpdate(
          this.trainable.params,
          grads,
          lr,
          gradNorm(grads),
          this.config.gradClip,
        );
        norm = r.norm;
        assertFiniteStep(loss, norm, step);
      } else {
        norm = await gradNorm(grads);
        assertFiniteStep(loss, norm, step);
        clipGrads(grads, norm, this.config.gradClip);
        this.optimizer.update(this.trainable.params, grads, lr);
      }
      this.step = step;
      const seconds = (performance.now() - t0) / 1000;
      return { step, loss, lr, gradNorm: norm, tokens, tokensPerSecond: tokens / seconds, seconds };
    } finally {
      disposeGrads(grads);
    }
  }

  /** Mean loss over fixed evaluation batches (NaN when there are none). */
  async evaluate(batches: readonly Batch[]): Promise<number> {
    if (batches.length === 0) return Number.NaN;
    let sum = 0;
    for (const b of batches) {
      const l = batchLoss(this.model, b, this.config.resetPositionIds);
      sum += (await l.data())[0];
      l.dispose();
    }
    return sum / batches.length;
  }

  /** Scalar parameters trained (the model's, or the trainable set's). */
  get parameterCount(): number {
    return this.trainable.parameterCount;
  }

  /** The trained weights, the AdamW state and the data position. */
  async checkpoint(): Promise<CheckpointContents> {
    return {
      step: this.step,
      weights: await this.trainable.weights(),
      optimizer: await this.optimizer.exportState(),
      data: this.loader.position(),
    };
  }

  /** Restores weights-independent state from a checkpoint: optimizer moments (strict), step and data position. */
  restore(contents: CheckpointContents): void {
    this.optimizer.importState(this.trainable.params, contents.optimizer);
    this.step = contents.step;
    this.loader.seek(contents.data);
  }

  /** Frees the optimizer state, then whatever `onDispose` frees (the engine factory's model and data). */
  async dispose(): Promise<void> {
    this.optimizer.dispose();
    this.onDispose?.();
  }
}

/**
 * The single-process engine: the whole model on this thread, `train.gradAccumulation` micro-batches per step from one
 * loader over the packed train split. With P = D = 1 every parallel engine must give its losses.
 */
export const singleProcessEngine: EngineFactory = async (setup) => {
  const index = readPackedIndex(setup.data);
  const eod = positionResetId(index, setup.train, setup.data);
  const split = PackedSplit.open(setup.data, index, 'train');
  let model: YuanModel | undefined;
  try {
    model = setup.resume
      ? YuanModel.fromWeights(setup.config, setup.attention, setup.resume.weights)
      : YuanModel.init(setup.config, setup.attention, setup.seed);
    const trainer = new Trainer(
      model,
      setup.train,
      setup.totalSteps,
      new BatchLoader(split, setup.train.seqLength, setup.train.microBatchSize, setup.seed, eod),
    );
    const owned = model;
    trainer.onDispose = () => {
      owned.dispose();
      split.close();
    };
    if (setup.resume) trainer.restore(setup.resume);
    return trainer;
  } catch (e) {
    model?.dispose();
    split.close();
    throw e;
  }
};
