/** The training engine library: config, schedule, AdamW, gradient steps, packed data, checkpoints and the loop. */
export { TRAIN_DEFAULTS, trainConfig, type TrainConfig } from './config.js';
export { learningRate, stepLearningRate, type LrSchedule } from './schedule.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { microBatchGrads, accumulateGrads, gradNorm, clipGrads, clipScale, assertFiniteStep, disposeGrads, type GradMap } from './grads.js';
export { PackWriter, type PackedIndex, type SplitInfo, type SplitName } from './pack.js';
export { PackedSplit, BatchLoader, readPackedIndex, positionResetId, evalBatches, YUAN_SPECIAL_IDS, type Batch, type DataPosition } from './data.js';
export { IndexedDataset, IndexedDatasetWriter, bestFittingDtype, MEGATRON_DTYPES, MMIDIDX_MAGIC, type IndexedHeader } from './megatron.js';
export { Trainer, batchLoss, singleProcessEngine, type TrainableSet } from './trainer.js';
export { adapterEngine, adapterWeightFiles, type AdapterTraining } from './adapter-engine.js';
export { LayeredModel, layerwiseBackward, type LayerwiseGroup } from './layerwise.js';
export type { TrainingEngine, EngineFactory, EngineSetup, StepMetrics } from './engine.js';
export { runTraining, checkTrainingData, writeLossPlot, type RunOptions, type RunResult } from './loop.js';
export { lineChartSvg, smooth, type Series } from './plot.js';
export {
  saveTrainCheckpoint,
  writeOptimizerShard,
  optimizerShardDir,
  loadTrainCheckpoint,
  listCheckpoints,
  checkpointProblem,
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
export { prepareData, prepareWorkersForInput, type PrepareOptions, type PrepareProgress, type PrepareResult, type SampleFormat } from './prepare.js';
export { yuanLine, type Sample } from './prepare-items.js';
