import { YuanError } from '@yuan/core';
import { tf } from '@yuan/tensor';
import { crossEntropy } from '../loss.js';
import type { YuanModel } from '../model.js';
import { AdamW } from './adamw.js';
import type { TrainConfig } from './config.js';
import type { Batch, BatchLoader } from './data.js';
import { accumulateGrads, clipGrads, disposeGrads, gradNorm, microBatchGrads, type GradMap } from './grads.js';
import { learningRate } from './schedule.js';

/** What one optimizer step reports. */
export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens processed in this step (all micro-batches). */
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
}

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
 * The single-process trainer: AdamW over all parameters, warmup + cosine schedule, clipping, gradient accumulation.
 * A step is built from separable parts (micro-batch gradients, accumulation, clipping, optimizer update), so a
 * parallel trainer can recombine them.
 */
export class Trainer {
  /** Completed optimizer steps. */
  step = 0;
  readonly optimizer: AdamW;

  constructor(
    readonly model: YuanModel,
    readonly config: TrainConfig,
    /** Total steps of the run (the cosine decays to `minLr` here unless `decaySteps` is set). */
    readonly totalSteps: number,
    readonly loader: BatchLoader,
  ) {
    this.optimizer = new AdamW({ beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay });
  }

  /** The learning rate of the next step. */
  nextLr(): number {
    const c = this.config;
    return learningRate(this.step + 1, { lr: c.lr, minLr: c.minLr, warmupSteps: c.warmupSteps, decaySteps: c.decaySteps ?? this.totalSteps });
  }

  /** Loss and accumulated gradients over `gradAccumulation` micro-batches (the mean of their losses). */
  async accumulatedGrads(): Promise<{ loss: number; grads: GradMap; tokens: number }> {
    const k = this.config.gradAccumulation;
    let grads: GradMap | undefined;
    let loss = 0;
    let tokens = 0;
    for (let i = 0; i < k; i++) {
      const batch = this.loader.next();
      const r = microBatchGrads(this.model.params, () => batchLoss(this.model, batch, this.config.resetPositionIds));
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
      const norm = await gradNorm(grads);
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        const what = Number.isFinite(loss) ? `gradient norm is ${norm} (loss ${loss.toFixed(4)})` : `loss is ${loss}`;
        throw new YuanError('nan', `${what} at step ${step}: training stopped; parameters were not updated`);
      }
      clipGrads(grads, norm, this.config.gradClip);
      const lr = this.nextLr();
      this.optimizer.update(this.model.params, grads, lr);
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

  /** Frees the optimizer state (not the model). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
