/**
 * @yuan/train: the training library — the `train` config section, the learning-rate schedule, AdamW, gradient steps,
 * the single-process trainer and the layer-by-layer backward, the `TrainingEngine` interface that the pipeline and
 * ZeRO engines implement, training checkpoints (save, resume, optimizer shards) and `runTraining`, the loop with
 * validation, metrics and the loss plot. Data comes from `@yuan/data`; the model from `@yuan/model`.
 */
export { TRAIN_DEFAULTS, trainConfig, type TrainConfig } from './config.js';
export { learningRate, stepLearningRate, type LrSchedule } from './schedule.js';
export { AdamW, keepsUpdate, type AdamWOptions, type SpeculativeUpdate } from './adamw.js';
export {
  microBatchGrads,
  accumulateGrads,
  gradNorm,
  clipGrads,
  clipScale,
  assertFiniteStep,
  disposeGrads,
  type GradMap,
} from './grads.js';
export { Trainer, batchLoss, singleProcessEngine, type TrainableSet } from './trainer.js';
export { adapterEngine, adapterWeightFiles, type AdapterTraining } from './adapter-engine.js';
export { LayeredModel, layerwiseBackward } from './layerwise.js';
export {
  LayerRange,
  type LayerwiseGroup,
  type RangeBatch,
  type KeptActivations,
  type KeptForward,
  type KeptTapes,
  type DeferredWeights,
  type LayerRecompute,
  type GradientSink,
  type GradientStep,
  type StepWrapper,
} from './layer-range.js';
export type { TrainingEngine, EngineFactory, EngineSetup, StepMetrics } from './engine.js';
export { runTraining, checkTrainingData, writeLossPlot, type RunOptions, type RunResult } from './loop.js';
export { lineChartSvg, smooth, type Series } from './plot.js';
export {
  saveTrainCheckpoint,
  writeOptimizerShard,
  optimizerShardDir,
  loadTrainCheckpoint,
  resolveResumeDir,
  readTrainState,
  checkSameModel,
  type TrainState,
  type OptimizerState,
  type OptimizerShard,
  type CheckpointContents,
  type CheckpointMeta,
  type WeightFiles,
} from './state.js';
