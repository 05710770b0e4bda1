/**
 * @yuan/comm: what moves bytes between the ranks of a job and starts them — process groups and bucketed ring collectives
 * over pluggable transports (`threads`, `tcp`), rank identity from torchrun/SLURM/Kubernetes variables, the local
 * launcher behind `yuan launch` and the SLURM/Kubernetes job files. It depends on `@yuan/core` only (no tensors).
 */
export {
  createProcessGroup,
  gridPosition,
  plugins,
  COMM_VERSION,
  type ProcessGroupOptions,
  type GridPosition,
} from './create.js';
export { shardRange, COLLECTIVE_DEFAULTS, type ProcessGroup, type ReduceOp, type CollectiveOptions } from './group.js';
export type { Transport, TransportPlugin, ConnectOptions } from './transport.js';
export { tcpTransport } from './tcp.js';
export {
  threadsTransport,
  spawnThreadRanks,
  threadRank,
  isThreadRank,
  threadWorld,
  threadRankLost,
  isThreadWorldMessage,
  type ThreadRank,
  type SpawnThreadOptions,
  type ThreadWorldMember,
} from './threads.js';
export { rankFromEnvironment, expandNodelist, DEFAULT_MASTER_PORT, type RankInfo, type RankSource } from './env.js';
export { PeerLostError, PeerTimeoutError, RendezvousError, RankFailedError } from './errors.js';
export {
  launchLocal,
  slurmScript,
  kubernetesManifest,
  type LaunchOptions,
  type LaunchResult,
  type JobFileOptions,
} from './launch.js';
