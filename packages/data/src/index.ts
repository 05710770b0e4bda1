/**
 * @yuan/data: training data on disk without tensors — `prepareData` (text, JSONL or YUAN-format lines tokenized on
 * worker threads into a packed folder with a train/valid split), Megatron-LM's `.bin`/`.idx` indexed datasets (read and
 * written), and the reading side the trainers use: packed splits and the seeded, resumable batch loader.
 * Depends on `@yuan/core` and `@yuan/tokenizer`.
 */
export { PackWriter, type PackedIndex, type SplitInfo, type SplitName } from './pack.js';
export {
  PackedSplit,
  BatchLoader,
  readPackedIndex,
  positionResetId,
  evalBatches,
  YUAN_SPECIAL_IDS,
  type Batch,
  type DataPosition,
} from './loader.js';
export {
  IndexedDataset,
  IndexedDatasetWriter,
  bestFittingDtype,
  MEGATRON_DTYPES,
  MMIDIDX_MAGIC,
  type IndexedHeader,
} from './megatron.js';
export {
  prepareData,
  prepareWorkersForInput,
  type PrepareOptions,
  type PrepareProgress,
  type PrepareResult,
  type SampleFormat,
} from './prepare.js';
export { yuanLine, type Sample } from './prepare-items.js';
