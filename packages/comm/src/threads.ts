import { isMainThread, MessageChannel, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { YuanError } from '@yuan/core';
import { PeerLostError, RankFailedError } from './errors.js';
import {
  BaseTransport,
  abortFromPeer,
  abortNotice,
  type ConnectOptions,
  type Transport,
  type TransportPlugin,
} from './transport.js';

const KEY = '__yuanThreadRank';

interface ThreadRankData {
  rank: number;
  worldSize: number;
  ports: (MessagePort | null)[];
  payload: unknown;
  timeoutMs: number;
}

type PortMessage =
  | { k: 'd'; t: string; b: ArrayBuffer; o: number; n: number }
  | { k: 'bye' }
  | { k: 'abort'; lostRank: number; message: string; timeout: boolean };

/** Worker threads of one process, one MessagePort per pair of ranks; payloads are transferred, not cloned. */
class ThreadsTransport extends BaseTransport {
  readonly name = 'threads';
  private readonly onParent = (m: unknown) => {
    const msg = m as Record<string, unknown> | null;
    if (msg && msg[KEY] === 'lost') {
      this.failFromPeer(
        new PeerLostError(msg.rank as number, `rank ${msg.rank as number} is lost: ${msg.reason as string}`),
      );
    }
  };

  constructor(
    rank: number,
    worldSize: number,
    timeoutMs: number,
    private readonly ports: (MessagePort | null)[],
  ) {
    super(rank, worldSize, timeoutMs);
    ports.forEach((port, peer) => {
      if (!port) return;
      port.on('message', (m: PortMessage) => {
        if (m.k === 'd') this.deliver(peer, m.t, new Uint8Array(m.b, m.o, m.n));
        else if (m.k === 'bye') this.peerLeft(peer);
        else if (m.k === 'abort') this.failFromPeer(abortFromPeer(peer, m));
      });
      port.on('close', () => {
        if (!this.closed && !this.hasLeft(peer)) {
          this.abort(
            new PeerLostError(peer, `rank ${peer} is lost: its worker thread ended without closing its process group`),
          );
        }
      });
    });
    parentPort?.on('message', this.onParent);
  }

  protected async sendRaw(peer: number, tag: string, data: Uint8Array, transfer: boolean): Promise<void> {
    const port = this.ports[peer]!;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    if (transfer && whole && data.buffer instanceof ArrayBuffer) {
      port.postMessage({ k: 'd', t: tag, b: data.buffer, o: 0, n: data.byteLength }, [data.buffer]);
    } else {
      const copy = data.slice();
      port.postMessage({ k: 'd', t: tag, b: copy.buffer, o: 0, n: copy.byteLength }, [copy.buffer]);
    }
  }

  protected broadcastAbort(error: Error): void {
    const notice = { k: 'abort', ...abortNotice(error, this.rank) };
    for (const [peer, port] of this.ports.entries()) {
      if (!port || this.hasLeft(peer)) continue;
      try {
        port.postMessage(notice);
      } catch {
        /* the peer is gone already */
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const port of this.ports) {
      if (!port) continue;
      try {
        port.postMessage({ k: 'bye' });
      } catch {
        /* gone */
      }
      port.close();
    }
    parentPort?.off('message', this.onParent);
    this.rejectAll(this.failure ?? new Error(`rank ${this.rank}: process group closed`));
  }
}

/** What a worker started by `spawnThreadRanks` gets from `joinThreadGroup`. */
export interface ThreadRank {
  /** This worker's rank, 0 … worldSize − 1. */
  rank: number;
  /** Number of worker ranks. */
  worldSize: number;
  /** The payload given to `spawnThreadRanks` (structured-cloned). */
  payload: unknown;
  /** Sends this rank's result to the spawner (structured-cloned); `spawnThreadRanks` resolves with them by rank. */
  reportResult(value: unknown): void;
}

/** True inside a worker started by `spawnThreadRanks`. */
export function isThreadRank(): boolean {
  return !isMainThread && !!(workerData as Record<string, unknown> | null)?.[KEY];
}

/** This worker's rank data; an error outside a worker started by `spawnThreadRanks`. */
function threadRankData(): ThreadRankData {
  const data = (workerData as Record<string, unknown> | null)?.[KEY] as ThreadRankData | undefined;
  if (isMainThread || !data) {
    throw new YuanError('usage', 'the threads transport works only inside a worker started by spawnThreadRanks()');
  }
  return data;
}

/** The rank, world size and payload of this worker (started by `spawnThreadRanks`), and how to report a result. */
export function threadRank(): ThreadRank {
  const d = threadRankData();
  return {
    rank: d.rank,
    worldSize: d.worldSize,
    payload: d.payload,
    reportResult: (value) => parentPort!.postMessage({ [KEY]: 'result', value }),
  };
}

let joined = false;

/** The `threads` transport plugin: connects a worker started by `spawnThreadRanks` to its siblings (no rendezvous). */
export const threadsTransport: TransportPlugin = {
  kind: 'transport',
  name: 'threads',
  description: 'worker threads of one process; MessagePort per pair of ranks, buffers transferred instead of copied',
  defaults: {},
  ranks: 'threads',
  identity() {
    const d = threadRankData();
    return { rank: d.rank, worldSize: d.worldSize };
  },
  async connect(opts: ConnectOptions): Promise<Transport> {
    const d = threadRankData();
    if (opts.rank !== d.rank || opts.worldSize !== d.worldSize) {
      throw new YuanError(
        'usage',
        `threads transport: rank ${opts.rank} of ${opts.worldSize} asked, but this worker is rank ${d.rank} of ${d.worldSize}`,
      );
    }
    if (joined)
      throw new YuanError(
        'usage',
        `threads transport: rank ${d.rank} already joined its thread group (join once per worker)`,
      );
    joined = true;
    return new ThreadsTransport(d.rank, d.worldSize, opts.timeoutMs, d.ports);
  },
};

/** What one worker of a threads world gets: merge `workerData` into the Worker's workerData, pass `transferList`. */
export interface ThreadWorldMember {
  /** The rank's connection data under a reserved key (`__yuanThreadRank`); the rest of workerData is the caller's. */
  workerData: Record<string, unknown>;
  /** The rank's MessagePorts (one per other rank); they must be transferred with the workerData. */
  transferList: MessagePort[];
}

/** One MessageChannel per pair of ranks: `ports[i][j]` is rank i's end of its channel to rank j (null on the diagonal). */
function portMesh(worldSize: number): (MessagePort | null)[][] {
  const ports: (MessagePort | null)[][] = Array.from({ length: worldSize }, () => new Array(worldSize).fill(null));
  for (let i = 0; i < worldSize; i++) {
    for (let j = i + 1; j < worldSize; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }
  return ports;
}

/**
 * The connection data of a threads world of `worldSize` ranks for workers the caller starts itself (as the pipeline
 * engine starts its stage workers), the low-level half of `spawnThreadRanks`: one MessageChannel per pair of ranks.
 * Inside worker `rank`, `createProcessGroup({ transport: 'threads' })` joins. `threadRankLost(rank, reason)` is the
 * message the starter posts to the other workers when one dies, so their pending calls reject naming it at once.
 */
export function threadWorld(worldSize: number, payload?: unknown, timeoutMs = 60_000): ThreadWorldMember[] {
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new RangeError(`worldSize ${worldSize} is not a positive integer`);
  const ports = portMesh(worldSize);
  return ports.map((mine, rank) => ({
    workerData: { [KEY]: { rank, worldSize, ports: mine, payload, timeoutMs } satisfies ThreadRankData },
    transferList: mine.filter((p): p is MessagePort => p !== null),
  }));
}

/** The message telling a worker of a threads world that `rank` is lost (post it to each surviving worker). */
export function threadRankLost(rank: number, reason: string): Record<string, unknown> {
  return { [KEY]: 'lost', rank, reason };
}

/** True for messages of the threads transport's own (a worker's message handler should skip them). */
export function isThreadWorldMessage(m: unknown): boolean {
  return !!m && typeof m === 'object' && KEY in (m as Record<string, unknown>);
}

/** Options of `spawnThreadRanks`. */
export interface SpawnThreadOptions {
  /** Collective timeout of each rank, ms (see ConnectOptions.timeoutMs). Default 60 000. */
  timeoutMs?: number;
  /** After the first failure, how long the other ranks get to stop on their own before they are terminated, ms. Default 10 000. */
  graceMs?: number;
  /** Receives each message a rank posts to its parent port besides its result (e.g. rank 0's progress), with the rank. */
  onMessage?: (rank: number, message: unknown) => void;
  /** Passed to each Worker (e.g. `resourceLimits`, `env`, `execArgv`). */
  workerOptions?: Omit<ConstructorParameters<typeof Worker>[1] & object, 'workerData' | 'transferList'>;
}

/**
 * Starts `worldSize` worker threads running the ES module `moduleUrl` (a file URL or absolute path); inside, the
 * module calls `createProcessGroup({ transport: 'threads' })` (and `threadRank()` for its rank and `payload`).
 * Resolves with the values the ranks passed to `reportResult`, by rank, once every worker exited cleanly. When a
 * rank throws or exits non-zero, the others are told it is lost (their collectives reject naming it), get
 * `graceMs` to stop, are then terminated, and the promise rejects with RankFailedError naming the first failed rank.
 */
export function spawnThreadRanks(
  moduleUrl: string | URL,
  worldSize: number,
  payload?: unknown,
  opts: SpawnThreadOptions = {},
): Promise<unknown[]> {
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new RangeError(`worldSize ${worldSize} is not a positive integer`);
  const url =
    moduleUrl instanceof URL ? moduleUrl : isAbsolute(moduleUrl) ? pathToFileURL(moduleUrl) : new URL(moduleUrl);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const graceMs = opts.graceMs ?? 10_000;
  const ports = portMesh(worldSize);
  return new Promise((resolve, reject) => {
    const results: unknown[] = new Array(worldSize).fill(undefined);
    const failures: { rank: number; message: string }[] = [];
    const running = new Set<number>();
    let graceTimer: NodeJS.Timeout | undefined;
    const workers = ports.map((mine, rank) => {
      const data: ThreadRankData = { rank, worldSize, ports: mine, payload, timeoutMs };
      const w = new Worker(url, {
        ...opts.workerOptions,
        workerData: { [KEY]: data },
        transferList: mine.filter((p): p is MessagePort => p !== null),
      });
      running.add(rank);
      let failed = false;
      const fail = (message: string) => {
        if (failed) return;
        failed = true;
        failures.push({ rank, message });
        if (failures.length > 1) return;
        for (const [r, other] of workers.entries()) {
          if (r !== rank && running.has(r)) other.postMessage({ [KEY]: 'lost', rank, reason: message });
        }
        graceTimer = setTimeout(() => {
          for (const r of running) void workers[r]!.terminate();
        }, graceMs);
      };
      w.on('message', (m: Record<string, unknown> | null) => {
        if (m && m[KEY] === 'result') results[rank] = m.value;
        else opts.onMessage?.(rank, m);
      });
      w.on('error', (e) => fail(`worker threw: ${(e as Error)?.message ?? String(e)}`.split('\n')[0]!));
      w.on('exit', (code) => {
        running.delete(rank);
        if (code !== 0) fail(`worker thread exited with code ${code}`);
        if (running.size > 0) return;
        if (graceTimer) clearTimeout(graceTimer);
        if (failures.length > 0) reject(new RankFailedError(failures));
        else resolve(results);
      });
      return w;
    });
  });
}
