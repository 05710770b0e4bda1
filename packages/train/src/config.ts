import { bool, ConfigError, num, obj, optional, type YuanConfig } from '@yuan/core';

/** The `train` config section. Defaults follow YUAN 2.0's scripts where they apply (β, wd, clip, reset positions). */
export interface TrainConfig {
  /** Tokens per sequence. Default 128. */
  seqLength: number;
  /** Sequences per micro-batch. Default 8. */
  microBatchSize: number;
  /** Micro-batches accumulated per optimizer step. Default 1. */
  gradAccumulation: number;
  /** Peak learning rate. Default 1e-3. */
  lr: number;
  /** Floor of the cosine decay. Default 1e-4. */
  minLr: number;
  /** Linear warmup steps. Default 20. */
  warmupSteps: number;
  /** Step at which the cosine reaches `minLr`; default: the run's total steps. */
  decaySteps?: number;
  /** Adam β1. Default 0.9. */
  beta1: number;
  /** Adam β2. Default 0.95. */
  beta2: number;
  /** Adam eps. Default 1e-8. */
  eps: number;
  /** Decoupled weight decay on parameters with more than one dimension. Default 0.1. */
  weightDecay: number;
  /** Global gradient-norm clip; 0 disables. Default 1.0. */
  gradClip: number;
  /**
   * Optimizer post-validation (zero-bubble paper §5): step before the global gradient norm is known, roll back on a
   * non-finite norm or one over `gradClip` (then redo the step clipped, as clipping first would). Default false.
   */
  postValidate: boolean;
  /** Restart RoPE positions after each `<eod>` inside a packed sequence (Megatron's --reset-position-ids). Default true. */
  resetPositionIds: boolean;
  /**
   * The id that ends each document (positions restart after it; `--eod-id`). Default: the `<eod>` of the data's
   * `index.json`; a Megatron dataset without one needs it (there is no safe guess). It must fit the data's dtype and
   * the model's vocabulary.
   */
  eodId?: number;
  /** Evaluate the validation loss every this many steps (0: only at the end). Default 50. */
  validEvery: number;
  /** Validation micro-batches per evaluation. Default 4. */
  validBatches: number;
  /** Write a checkpoint every this many steps (0: only at the end). Default 100. */
  checkpointEvery: number;
  /** Complete checkpoints kept in the output folder. Default 2. */
  keepCheckpoints: number;
}

/** Defaults of the `train` section. */
export const TRAIN_DEFAULTS: TrainConfig = {
  seqLength: 128,
  microBatchSize: 8,
  gradAccumulation: 1,
  lr: 1e-3,
  minLr: 1e-4,
  warmupSteps: 20,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1.0,
  postValidate: false,
  resetPositionIds: true,
  validEvery: 50,
  validBatches: 4,
  checkpointEvery: 100,
  keepCheckpoints: 2,
};

const schema = obj({
  seqLength: num({ int: true, min: 2 }),
  microBatchSize: num({ int: true, min: 1 }),
  gradAccumulation: num({ int: true, min: 1 }),
  lr: num({ gt: 0 }),
  minLr: num({ min: 0 }),
  warmupSteps: num({ int: true, min: 0 }),
  decaySteps: optional(num({ int: true, min: 1 })),
  beta1: num({ min: 0, max: 0.999999 }),
  beta2: num({ min: 0, max: 0.999999 }),
  eps: num({ gt: 0 }),
  weightDecay: num({ min: 0 }),
  gradClip: num({ min: 0 }),
  postValidate: bool(),
  resetPositionIds: bool(),
  eodId: optional(num({ int: true, min: 0 })),
  validEvery: num({ int: true, min: 0 }),
  validBatches: num({ int: true, min: 1 }),
  checkpointEvery: num({ int: true, min: 0 }),
  keepCheckpoints: num({ int: true, min: 1 }),
});

/** The validated `train` section of a config (merged over the defaults); a bad field is named with its value. */
export function trainConfig(config: YuanConfig): TrainConfig {
  const raw = (config.train ?? {}) as Record<string, unknown>;
  const parsed = schema.parse({ ...TRAIN_DEFAULTS, ...raw }, 'train') as TrainConfig;
  if (parsed.minLr > parsed.lr)
    throw new ConfigError(`invalid config: train.minLr = ${parsed.minLr} is above train.lr = ${parsed.lr}`);
  if (parsed.seqLength > config.model.maxPositions) {
    throw new ConfigError(
      `invalid config: train.seqLength = ${parsed.seqLength} exceeds model.maxPositions = ${config.model.maxPositions}`,
    );
  }
  return parsed;
}
