import type { PluginBase } from '@yuan/core';
import { PeerLostError, PeerTimeoutError } from './errors.js';

/**
 * The point-to-point layer every collective is built on. Messages are raw bytes, matched by (sending rank, tag) in
 * FIFO order; ranks are global (0 … worldSize − 1). A transport fails as a whole: after a peer is lost or silent,
 * every pending and later call rejects with the same error, which names the lost rank.
 */
export interface Transport {
  /** This process's global rank. */
  readonly rank: number;
  /** Number of ranks in the world. */
  readonly worldSize: number;
  /** The transport's name, e.g. `tcp` or `threads`. */
  readonly name: string;
  /**
   * Sends `data` to `peer` under `tag`. Resolves once the bytes are handed off; the caller must not change `data`
   * before then. With `transfer`, a threads transport may move `data.buffer` to the peer instead of copying
   * (the caller's buffer is then detached). Rejects with PeerLostError / PeerTimeoutError.
   */
  send(peer: number, tag: string, data: Uint8Array, opts?: { transfer?: boolean }): Promise<void>;
  /** The next message from `peer` under `tag`; rejects with PeerTimeoutError after `timeoutMs` without data from it. */
  recv(peer: number, tag: string): Promise<Uint8Array>;
  /** Per-transport scratch: collective sequence numbers by group key (shared by every group object on this transport). */
  readonly sequences: Map<string, number>;
  /** Marks the transport failed with `error`, tells live peers (best effort) and rejects everything pending. */
  abort(error: Error): void;
  /** Says goodbye to every peer and releases sockets/ports; pending receives reject. Idempotent. */
  close(): Promise<void>;
}

/** What every transport's `connect` gets; transports ignore the fields they do not need. */
export interface ConnectOptions {
  /** This process's global rank, 0 … worldSize − 1. */
  rank: number;
  /** Number of ranks. */
  worldSize: number;
  /** Host of rank 0's rendezvous (tcp). Default `127.0.0.1`. */
  masterAddr: string;
  /** Port of rank 0's rendezvous (tcp). Default 29500 (torchrun's default). */
  masterPort: number;
  /** Milliseconds without data from an awaited peer before it is declared silent. Default 60 000. */
  timeoutMs: number;
  /** Milliseconds for the whole start-up (all ranks joined and connected). Default `timeoutMs`. */
  rendezvousTimeoutMs: number;
  /** A hash of the run's config; every rank must present the same one. Default ''. */
  configHash: string;
  /** The code version; every rank must present the same one. Default this package's version. */
  codeVersion: string;
  /** Local address the tcp transport listens on. Default `0.0.0.0`. */
  bindAddr: string;
}

/**
 * A transport plugin (registry kind `transport`): a named factory of connected transports. It describes itself, so
 * nothing that uses a transport branches on its name: whether its ranks are threads of one process (`ranks`) and
 * whether it knows a rank's identity itself (`identity`).
 */
export interface TransportPlugin extends PluginBase<'transport', Record<string, unknown>> {
  /** Joins the world described by `opts` and resolves once this rank can talk to every other rank. */
  connect(opts: ConnectOptions): Promise<Transport>;
  /**
   * Where the ranks of a world that one process starts itself run (`trainParallel`): `threads`, worker threads of that
   * process started by `spawnThreadRanks` (such a transport cannot join a launched job); `processes`, local processes
   * that join through the rendezvous with torchrun's variables. Default `processes`.
   */
  readonly ranks?: 'threads' | 'processes';
  /**
   * This rank's place when the transport knows it itself (the `threads` transport: from the worker's data), used when
   * `createProcessGroup` is given no rank; may throw a one-line error where the transport cannot be joined from here.
   */
  identity?(): { rank: number; worldSize: number };
}

declare module '@yuan/core' {
  interface PluginKinds {
    transport: TransportPlugin;
  }
}

interface Waiter {
  peer: number;
  tag: string;
  since: number;
  resolve(data: Uint8Array): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
}

/** Shared machinery of the built-in transports: message matching, timeouts, failure and abort propagation. */
export abstract class BaseTransport implements Transport {
  abstract readonly name: string;
  readonly sequences = new Map<string, number>();
  protected failure?: Error;
  protected closed = false;
  private readonly queues = new Map<string, Uint8Array[]>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly goneGracefully = new Set<number>();
  private readonly lastActivity: number[];
  private readonly pendingSends = new Set<{ reject(e: Error): void }>();

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    protected readonly timeoutMs: number,
  ) {
    this.lastActivity = new Array<number>(worldSize).fill(0);
  }

  /** Puts bytes on the wire; resolves when `data` may be reused. */
  protected abstract sendRaw(peer: number, tag: string, data: Uint8Array, transfer: boolean): Promise<void>;
  /** Tells live peers this rank is aborting because of `error` (best effort, never throws). */
  protected abstract broadcastAbort(error: Error): void;

  /** Records bytes from a peer (resets its silence clock). */
  protected touch(peer: number): void {
    this.lastActivity[peer] = Date.now();
  }

  /** A complete message arrived from `peer`. */
  protected deliver(peer: number, tag: string, data: Uint8Array): void {
    this.touch(peer);
    const key = `${peer}\u0000${tag}`;
    const ws = this.waiters.get(key);
    const w = ws?.shift();
    if (ws && ws.length === 0) this.waiters.delete(key);
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(data);
      return;
    }
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    q.push(data);
  }

  /** `peer` said goodbye: later receives from it reject, the transport stays usable with the others. */
  protected peerLeft(peer: number): void {
    this.goneGracefully.add(peer);
    for (const [key, ws] of this.waiters) {
      if (ws[0]?.peer !== peer) continue;
      this.waiters.delete(key);
      for (const w of ws) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(
          new PeerLostError(
            peer,
            `rank ${peer} closed its process group while rank ${this.rank} still waited for ${describeTag(w.tag)}`,
          ),
        );
      }
    }
  }

  /** True once `peer` said goodbye. */
  protected hasLeft(peer: number): boolean {
    return this.goneGracefully.has(peer);
  }

  send(peer: number, tag: string, data: Uint8Array, opts: { transfer?: boolean } = {}): Promise<void> {
    this.checkPeer(peer);
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error(`rank ${this.rank}: send on a closed process group`));
    if (this.goneGracefully.has(peer)) {
      return Promise.reject(
        new PeerLostError(
          peer,
          `rank ${peer} closed its process group; rank ${this.rank} cannot send ${describeTag(tag)} to it`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { reject };
      this.pendingSends.add(entry);
      const timer = setTimeout(() => {
        this.abort(
          new PeerTimeoutError(
            peer,
            `rank ${peer} did not take data from rank ${this.rank} for ${this.timeoutMs / 1000} s (${describeTag(tag)}); it is hung or gone`,
          ),
        );
      }, this.timeoutMs);
      this.sendRaw(peer, tag, data, opts.transfer ?? false).then(
        () => {
          clearTimeout(timer);
          this.pendingSends.delete(entry);
          resolve();
        },
        (e: Error) => {
          clearTimeout(timer);
          this.pendingSends.delete(entry);
          reject(this.failure ?? e);
        },
      );
    });
  }

  recv(peer: number, tag: string): Promise<Uint8Array> {
    this.checkPeer(peer);
    if (this.failure) return Promise.reject(this.failure);
    const key = `${peer}\u0000${tag}`;
    const q = this.queues.get(key);
    if (q && q.length > 0) {
      const data = q.shift()!;
      if (q.length === 0) this.queues.delete(key);
      return Promise.resolve(data);
    }
    if (this.closed) return Promise.reject(new Error(`rank ${this.rank}: receive on a closed process group`));
    if (this.goneGracefully.has(peer)) {
      return Promise.reject(
        new PeerLostError(
          peer,
          `rank ${peer} closed its process group while rank ${this.rank} still waited for ${describeTag(tag)}`,
        ),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const w: Waiter = { peer, tag, since: Date.now(), resolve, reject };
      const arm = (ms: number) => {
        w.timer = setTimeout(() => {
          const quietFor = Date.now() - Math.max(w.since, this.lastActivity[peer]!);
          if (quietFor < this.timeoutMs) return arm(this.timeoutMs - quietFor);
          this.abort(
            new PeerTimeoutError(
              peer,
              `rank ${peer} sent nothing to rank ${this.rank} for ${this.timeoutMs / 1000} s (waiting for ${describeTag(tag)}); it is hung, gone or out of step`,
            ),
          );
        }, ms);
      };
      arm(this.timeoutMs);
      let ws = this.waiters.get(key);
      if (!ws) this.waiters.set(key, (ws = []));
      ws.push(w);
    });
  }

  abort(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    if (!this.closed) this.broadcastAbort(error);
    this.rejectAll(error);
  }

  /**
   * Fails because a peer (or the supervisor) told us of a failure, and passes the news on to every peer: a rank that
   * only hears of a lost rank through us must learn that rank, not merely that we went away. Every rank fails once, so
   * the relay ends.
   */
  protected failFromPeer(error: Error): void {
    this.abort(error);
  }

  /** Rejects every pending receive and send with `error`. */
  protected rejectAll(error: Error): void {
    for (const ws of this.waiters.values()) {
      for (const w of ws) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(error);
      }
    }
    this.waiters.clear();
    for (const s of this.pendingSends) s.reject(error);
    this.pendingSends.clear();
  }

  abstract close(): Promise<void>;

  private checkPeer(peer: number): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.worldSize || peer === this.rank) {
      throw new RangeError(
        `peer rank ${peer} is not another rank of 0..${this.worldSize - 1} (this is rank ${this.rank})`,
      );
    }
  }
}

/** A human reading of an internal tag: `allReduce#0,1,2#7#0#3` → `allReduce (collective 7 on ranks [0,1,2])`. */
export function describeTag(tag: string): string {
  const [op, group, seq] = tag.split('#');
  if (op === 'p2p') return `a message with tag ${seq} on ranks [${group}]`;
  if (op && group !== undefined && seq !== undefined) return `${op} (collective #${seq} on ranks [${group}])`;
  return `message "${tag}"`;
}

/** The lost rank and message carried by an abort notice from `from`. */
export function abortFromPeer(from: number, notice: { lostRank?: number; message?: string; timeout?: boolean }): Error {
  const rank = typeof notice.lostRank === 'number' ? notice.lostRank : from;
  const msg = `${notice.message ?? `rank ${from} aborted`} (reported by rank ${from})`;
  return notice.timeout ? new PeerTimeoutError(rank, msg) : new PeerLostError(rank, msg);
}

/** The abort notice sent to peers for `error`. */
export function abortNotice(error: Error, self: number): { lostRank: number; message: string; timeout: boolean } {
  const e = error as Partial<PeerLostError>;
  return {
    lostRank: typeof e.rank === 'number' ? e.rank : self,
    message: error.message,
    timeout: error instanceof PeerTimeoutError,
  };
}
