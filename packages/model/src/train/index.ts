/** The single-process trainer: config, schedule, AdamW, gradient steps, packed data, training checkpoints. */
export { TRAIN_DEFAULTS, trainConfig, type TrainConfig } from './config.js';
export { learningRate, type LrSchedule } from './schedule.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { microBatchGrads, accumulateGrads, gradNorm, clipGrads, disposeGrads, type GradMap } from './grads.js';
export { PackWriter, type PackedIndex, type SplitInfo, type SplitName } from './pack.js';
export { PackedSplit, BatchLoader, readPackedIndex, evalBatches, YUAN_SPECIAL_IDS, type Batch, type DataPosition } from './data.js';
export { IndexedDataset, IndexedDatasetWriter, bestFittingDtype, MEGATRON_DTYPES, MMIDIDX_MAGIC, type IndexedHeader } from './megatron.js';
export { Trainer, batchLoss, type StepMetrics } from './trainer.js';
export {
  saveTrainCheckpoint,
  loadTrainCheckpoint,
  listCheckpoints,
  resolveResumeDir,
  readTrainState,
  checkSameModel,
  type TrainState,
} from './state.js';
export { prepareData, type PrepareOptions, type PrepareProgress, type PrepareResult, type SampleFormat } from './prepare.js';
export { yuanLine, type Sample } from './prepare-items.js';
