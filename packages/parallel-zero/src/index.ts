/**
 * @yuan/parallel-zero: data parallelism with ZeRO optimizer sharding — the data-parallel training engine (ZeRO 0/1/2)
 * and the sharded AdamW it and the pipeline's stages use. Process groups and collectives come from `@yuan/comm`.
 */
export { dataParallelEngine, type DataParallelOptions, type DataParallelMemory, type ZeroStage } from './engine.js';
export { GradientSpace, GROUPS_IN_FLIGHT } from './space.js';
export {
  ShardedAdamW,
  flatLayout,
  flattenGrads,
  allGatherParameters,
  ownedRanges,
  type FlatSlot,
  type ShardedAdamWOptions,
  type GradientBucket,
} from './sharded.js';
