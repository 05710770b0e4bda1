import { readFileSync } from 'node:fs';
import { moduleRegistry, YuanError, type PluginRegistry } from '@yuan/core';
import { COLLECTIVE_DEFAULTS, RingGroup, type CollectiveOptions, type ProcessGroup } from './group.js';
import { rankFromEnvironment, DEFAULT_MASTER_PORT } from './env.js';
import { tcpTransport } from './tcp.js';
import { threadsTransport } from './threads.js';
import { BaseTransport, type ConnectOptions, type Transport, type TransportPlugin } from './transport.js';

/**
 * This package's version, read from its package.json (one folder above both `src/` and `dist/`), so a release bumps it
 * with the package; ranks exchange it at start-up as the default code version.
 */
export const COMM_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The plugins @yuan/comm provides (what `yuan` registers from it): the transports `threads` and `tcp`. */
export const plugins: readonly TransportPlugin[] = [threadsTransport, tcpTransport];

let ownRegistry: PluginRegistry | undefined;

/** A frozen registry of this package's own plugins: where transport names are looked up when no registry is given. */
function commRegistry(): PluginRegistry {
  return (ownRegistry ??= moduleRegistry({ plugins }, '@yuan/comm'));
}

/** Options of `createProcessGroup`; unset fields come from the environment (`rankFromEnvironment`) or defaults. */
export interface ProcessGroupOptions extends Partial<ConnectOptions>, Partial<CollectiveOptions> {
  /** A transport plugin, or its name, looked up in `registry` (kind `transport`). Default `tcp`. */
  transport?: string | TransportPlugin;
  /** Where a transport name is looked up. Default: a registry of this package's transports (`commRegistry()`). */
  registry?: PluginRegistry;
  /** Environment to read rank identity from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** One rank alone: every collective is the identity. */
class SoloTransport extends BaseTransport {
  readonly name = 'solo';
  protected sendRaw(): Promise<void> {
    return Promise.reject(new Error('a world of one rank has no peers'));
  }
  protected broadcastAbort(): void {}
  async close(): Promise<void> {
    this.closed = true;
  }
}

function findTransport(
  t: string | TransportPlugin | undefined,
  registry: PluginRegistry = commRegistry(),
): TransportPlugin {
  if (t && typeof t === 'object') return t;
  const name = t ?? 'tcp';
  if (!registry.has('transport', name)) {
    throw new YuanError(
      'config',
      `unknown transport "${name}" (registered: ${registry.names('transport').join(', ') || 'none'})`,
    );
  }
  return registry.get('transport', name);
}

/**
 * Joins the world and returns its ProcessGroup (all ranks). Rank and world size come from the options, else the
 * transport itself where it knows them (`identity`: the `threads` transport's worker data), else the environment (`rankFromEnvironment`: torchrun, SLURM,
 * Kubernetes). With the tcp transport every rank presents `configHash` and `codeVersion` to rank 0; a world size,
 * config or version that differs is a RendezvousError with the same one-line message on every rank, as is a rank
 * missing after `rendezvousTimeoutMs` (naming it) or a MASTER_PORT in use. A world of one rank needs no transport.
 */
export async function createProcessGroup(opts: ProcessGroupOptions = {}): Promise<ProcessGroup> {
  const plugin = findTransport(opts.transport, opts.registry);
  let rank = opts.rank;
  let worldSize = opts.worldSize;
  let masterAddr = opts.masterAddr;
  let masterPort = opts.masterPort;
  if (plugin.identity && (rank === undefined || worldSize === undefined)) {
    const me = plugin.identity();
    rank ??= me.rank;
    worldSize ??= me.worldSize;
  }
  if (rank === undefined || worldSize === undefined) {
    const info = rankFromEnvironment(opts.env ?? process.env);
    rank ??= info.rank;
    worldSize ??= info.worldSize;
    masterAddr ??= info.masterAddr;
    masterPort ??= info.masterPort;
  }
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new YuanError('config', `world size ${worldSize} is not a positive integer`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new YuanError('config', `rank ${rank} is not in 0..${worldSize - 1}`);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (!(timeoutMs > 0))
    throw new YuanError('config', `timeoutMs ${timeoutMs} is not a positive number of milliseconds`);
  const collective: CollectiveOptions = {
    bucketBytes: opts.bucketBytes ?? COLLECTIVE_DEFAULTS.bucketBytes,
    inflight: opts.inflight ?? COLLECTIVE_DEFAULTS.inflight,
  };
  if (!(collective.bucketBytes >= 4) || !Number.isInteger(collective.inflight) || collective.inflight < 1) {
    throw new YuanError(
      'config',
      `bucketBytes ${collective.bucketBytes} must be >= 4 and inflight ${collective.inflight} a positive integer`,
    );
  }
  const connect: ConnectOptions = {
    rank,
    worldSize,
    masterAddr: masterAddr ?? '127.0.0.1',
    masterPort: masterPort ?? DEFAULT_MASTER_PORT,
    timeoutMs,
    rendezvousTimeoutMs: opts.rendezvousTimeoutMs ?? timeoutMs,
    configHash: opts.configHash ?? '',
    codeVersion: opts.codeVersion ?? COMM_VERSION,
    bindAddr: opts.bindAddr ?? '0.0.0.0',
  };
  // a thread world of one is still joined (its worker data and port are the transport's); any other world of one needs no peers
  const transport: Transport =
    worldSize === 1 && plugin.ranks !== 'threads' ? new SoloTransport(0, 1, timeoutMs) : await plugin.connect(connect);
  return new RingGroup(
    transport,
    Array.from({ length: worldSize }, (_, i) => i),
    collective,
    true,
  );
}

/** A rank's place in a P × D grid (Megatron's layout without tensor parallelism: data-parallel groups inside each stage). */
export interface GridPosition {
  /** Pipeline stage, 0 … P − 1: `floor(rank / D)`. */
  stage: number;
  /** Index inside the stage's data-parallel group, 0 … D − 1: `rank mod D`. */
  dataRank: number;
  /** Global ranks of this rank's data-parallel group: the D ranks of its stage. */
  dataParallelRanks: number[];
  /** Global ranks of this rank's pipeline: one per stage, same `dataRank`, in stage order. */
  pipelineRanks: number[];
}

/**
 * Where global `rank` sits in a grid of `pp` stages × `dp` data-parallel ranks (world = pp × dp). Stage s holds
 * ranks s·D … s·D + D − 1, as Megatron's `initialize_model_parallel` with tensor parallel size 1. Make the groups
 * with `world.subgroup(pos.dataParallelRanks)` and `world.subgroup(pos.pipelineRanks)`.
 */
export function gridPosition(rank: number, pp: number, dp: number): GridPosition {
  if (!Number.isInteger(pp) || pp < 1 || !Number.isInteger(dp) || dp < 1)
    throw new RangeError(`grid ${pp} × ${dp} needs positive integers`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= pp * dp)
    throw new RangeError(`rank ${rank} is not in a ${pp} × ${dp} grid (0..${pp * dp - 1})`);
  const stage = Math.floor(rank / dp);
  const dataRank = rank % dp;
  return {
    stage,
    dataRank,
    dataParallelRanks: Array.from({ length: dp }, (_, i) => stage * dp + i),
    pipelineRanks: Array.from({ length: pp }, (_, s) => s * dp + dataRank),
  };
}
