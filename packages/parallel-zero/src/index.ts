/** @yuan/parallel-zero: process groups and collectives over pluggable transports, rank identity, the launcher. */
export { createProcessGroup, registerTransports, gridPosition, TRANSPORT_PLUGINS, PARALLEL_ZERO_VERSION, type ProcessGroupOptions, type GridPosition } from './create.js';
export { shardRange, COLLECTIVE_DEFAULTS, type ProcessGroup, type ReduceOp, type CollectiveOptions } from './group.js';
export type { Transport, TransportPlugin, ConnectOptions } from './transport.js';
export { tcpTransport } from './tcp.js';
export { threadsTransport, spawnThreadRanks, threadRank, isThreadRank, threadWorld, threadRankLost, isThreadWorldMessage, type ThreadRank, type SpawnThreadOptions, type ThreadWorldMember } from './threads.js';
export { rankFromEnvironment, expandNodelist, DEFAULT_MASTER_PORT, type RankInfo, type RankSource } from './env.js';
export { PeerLostError, PeerTimeoutError, RendezvousError, RankFailedError } from './errors.js';
export { launchLocal, slurmScript, kubernetesManifest, type LaunchOptions, type LaunchResult, type JobFileOptions } from './launch.js';
export { dataParallelEngine, type DataParallelOptions, type DataParallelMemory, type ZeroStage } from './engine.js';
export { GradientSpace, GROUPS_IN_FLIGHT } from './space.js';
export { ShardedAdamW, flatLayout, flattenGrads, allGatherParameters, ownedRanges, type FlatSlot, type ShardedAdamWOptions, type GradientBucket } from './sharded.js';
