import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { PeerLostError, RendezvousError } from './errors.js';
import {
  BaseTransport,
  abortFromPeer,
  abortNotice,
  type ConnectOptions,
  type Transport,
  type TransportPlugin,
} from './transport.js';

/** Frame types. A frame is an 8-byte header (type u8, 0 u8, tag length u16 BE, body length u32 BE), tag, body. */
const HELLO = 1;
const TABLE = 2;
const ERROR = 3;
const PEER = 4;
const DATA = 5;
const BYE = 6;
const ABORT = 7;
const MAGIC = 'yuan-parallel-zero/1';
/** Largest control frame accepted before a connection is identified (anything bigger is not one of ours). */
const MAX_CONTROL = 1 << 20;

type FrameHandler = (type: number, tag: string, body: Uint8Array) => void;

/** Splits a byte stream into frames; bodies land in their own ArrayBuffer (offset 0, so float32-aligned). */
class FrameReader {
  private readonly head = Buffer.alloc(8);
  private headFill = 0;
  private tagBuf?: Buffer;
  private tagFill = 0;
  private body?: Uint8Array;
  private bodyFill = 0;
  private type = 0;
  private tag = '';
  identified = false;

  constructor(
    private readonly onFrame: FrameHandler,
    private readonly onBad: (why: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.body) {
        const n = Math.min(chunk.length - off, this.body.length - this.bodyFill);
        this.body.set(chunk.subarray(off, off + n), this.bodyFill);
        this.bodyFill += n;
        off += n;
        if (this.bodyFill === this.body.length) this.emit();
        continue;
      }
      if (this.tagBuf) {
        const n = Math.min(chunk.length - off, this.tagBuf.length - this.tagFill);
        chunk.copy(this.tagBuf, this.tagFill, off, off + n);
        this.tagFill += n;
        off += n;
        if (this.tagFill === this.tagBuf.length) {
          this.tag = this.tagBuf.toString('utf8');
          this.tagBuf = undefined;
          this.startBody();
        }
        continue;
      }
      const n = Math.min(chunk.length - off, 8 - this.headFill);
      chunk.copy(this.head, this.headFill, off, off + n);
      this.headFill += n;
      off += n;
      if (this.headFill < 8) continue;
      this.headFill = 0;
      this.type = this.head[0]!;
      const tagLen = this.head.readUInt16BE(2);
      const bodyLen = this.head.readUInt32BE(4);
      if (
        this.type < HELLO ||
        this.type > ABORT ||
        this.head[1] !== 0 ||
        (!this.identified && (bodyLen > MAX_CONTROL || this.type === DATA))
      ) {
        this.onBad('received bytes that are not a frame of the yuan tcp transport');
        return;
      }
      this.bodyLen = bodyLen;
      if (tagLen > 0) {
        this.tagBuf = Buffer.alloc(tagLen);
        this.tagFill = 0;
      } else {
        this.tag = '';
        this.startBody();
      }
    }
  }

  private bodyLen = 0;

  private startBody(): void {
    this.body = new Uint8Array(this.bodyLen);
    this.bodyFill = 0;
    if (this.bodyLen === 0) this.emit();
  }

  private emit(): void {
    const body = this.body!;
    this.body = undefined;
    this.onFrame(this.type, this.tag, body);
  }
}

function writeFrame(
  sock: net.Socket,
  type: number,
  tag: string,
  body: Uint8Array,
  done?: (err?: Error | null) => void,
): void {
  if (body.byteLength > 0xffffffff)
    throw new RangeError(`a message of ${body.byteLength} bytes is over the 4 GiB frame limit`);
  const tagBytes = Buffer.from(tag, 'utf8');
  const head = Buffer.alloc(8 + tagBytes.length);
  head[0] = type;
  head.writeUInt16BE(tagBytes.length, 2);
  head.writeUInt32BE(body.byteLength, 4);
  tagBytes.copy(head, 8);
  if (body.byteLength === 0) {
    sock.write(head, done);
    return;
  }
  sock.cork();
  sock.write(head);
  sock.write(body, done);
  sock.uncork();
}

function writeJson(sock: net.Socket, type: number, value: unknown): void {
  writeFrame(sock, type, '', Buffer.from(JSON.stringify(value), 'utf8'));
}

function parseJson(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Full mesh of TCP connections, one per pair of ranks, Nagle off. */
class TcpTransport extends BaseTransport {
  readonly name = 'tcp';
  readonly links: (net.Socket | undefined)[];

  constructor(rank: number, worldSize: number, timeoutMs: number) {
    super(rank, worldSize, timeoutMs);
    this.links = new Array(worldSize).fill(undefined);
  }

  /** Makes `sock` the link to `peer`; frames after the identifying one go through `onFrame`. */
  adopt(peer: number, sock: net.Socket): void {
    this.links[peer] = sock;
    sock.on('close', () => {
      if (this.links[peer] === sock) this.links[peer] = undefined;
      if (this.closed || this.hasLeft(peer)) return;
      this.abort(
        new PeerLostError(
          peer,
          `rank ${peer} is lost: its connection to rank ${this.rank} closed without a goodbye (process killed, crashed or network down)`,
        ),
      );
    });
  }

  onFrame(peer: number, type: number, tag: string, body: Uint8Array): void {
    this.touch(peer);
    if (type === DATA) this.deliver(peer, tag, body);
    else if (type === BYE) this.peerLeft(peer);
    else if (type === ABORT) this.failFromPeer(abortFromPeer(peer, parseJson(body) ?? {}));
  }

  onBytes(peer: number): void {
    this.touch(peer);
  }

  protected sendRaw(peer: number, tag: string, data: Uint8Array): Promise<void> {
    const sock = this.links[peer];
    if (!sock || sock.destroyed) {
      return Promise.reject(new PeerLostError(peer, `rank ${peer} is lost: no open connection from rank ${this.rank}`));
    }
    return new Promise((resolve, reject) => {
      writeFrame(sock, DATA, tag, data, (err) =>
        err
          ? reject(new PeerLostError(peer, `rank ${peer} is lost: writing to it failed (${err.message})`))
          : resolve(),
      );
    });
  }

  protected broadcastAbort(error: Error): void {
    const body = Buffer.from(JSON.stringify(abortNotice(error, this.rank)));
    for (const sock of this.links) {
      if (sock && !sock.destroyed) {
        try {
          writeFrame(sock, ABORT, '', body);
        } catch {
          /* best effort */
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = this.links.map(
      (sock) =>
        new Promise<void>((resolve) => {
          if (!sock || sock.destroyed) return resolve();
          const t = setTimeout(() => {
            sock.destroy();
            resolve();
          }, 2000);
          sock.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          try {
            writeFrame(sock, BYE, '', new Uint8Array(0));
          } catch {
            /* gone */
          }
          sock.end();
        }),
    );
    this.rejectAll(this.failure ?? new Error(`rank ${this.rank}: process group closed`));
    await Promise.all(done);
  }
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true });
  });
}

function prepare(sock: net.Socket): void {
  sock.setNoDelay(true);
  sock.setKeepAlive(true, 10_000);
}

/** Connects, retrying refused/unreachable connections until `deadline` (ms since epoch). */
async function connectRetry(host: string, port: number, deadline: number, what: string): Promise<net.Socket> {
  let lastErr = '';
  let wait = 50;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0)
      throw new RendezvousError(
        `${what} at ${host}:${port} did not accept a connection in time (${lastErr || 'no answer'})`,
      );
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect({ host, port });
        const t = setTimeout(
          () => {
            sock.destroy();
            reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
          },
          Math.min(left, 5000),
        );
        sock.once('connect', () => {
          clearTimeout(t);
          sock.removeAllListeners('error');
          resolve(sock);
        });
        sock.once('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
      });
    } catch (e) {
      lastErr = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
      wait = Math.min(wait * 2, 1000);
    }
  }
}

interface Hello {
  magic: string;
  rank: number;
  worldSize: number;
  configHash: string;
  codeVersion: string;
  port: number;
}

const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;

function rankList(ranks: number[]): string {
  return ranks.length > 12 ? `${ranks.slice(0, 12).join(', ')}, … (${ranks.length} in all)` : ranks.join(', ');
}

/** Rank 0: listen at the master port, collect every rank's hello, check them, hand out the address table. */
async function rendezvousMaster(o: ConnectOptions): Promise<TcpTransport> {
  const t = new TcpTransport(0, o.worldSize, o.timeoutMs);
  const server = net.createServer();
  try {
    await listen(server, o.masterPort, o.bindAddr);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new RendezvousError(
        `MASTER_PORT ${o.masterPort} is already in use on rank 0's host (${o.bindAddr}:${o.masterPort}); pick a free port (--master-port / MASTER_PORT)`,
      );
    }
    throw new RendezvousError(`rank 0 cannot listen on ${o.bindAddr}:${o.masterPort}: ${(e as Error).message}`);
  }
  const joined = new Map<number, { sock: net.Socket; host: string; port: number }>();
  const all = new Set<net.Socket>();
  const session = randomBytes(8).toString('hex');
  return new Promise<TcpTransport>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      const missing = [];
      for (let r = 1; r < o.worldSize; r++) if (!joined.has(r)) missing.push(r);
      fail(
        `rendezvous timed out after ${secs(o.rendezvousTimeoutMs)}: rank(s) ${rankList(missing)} of ${o.worldSize} never joined rank 0 at ${o.masterAddr}:${o.masterPort}`,
      );
    }, o.rendezvousTimeoutMs);
    const fail = (message: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const s of all) {
        try {
          writeJson(s, ERROR, { message });
        } catch {
          /* gone */
        }
        s.end();
      }
      // Late joiners get the same error for a moment, so every rank prints it.
      server.removeAllListeners('connection');
      server.on('connection', (s) => {
        writeJson(s, ERROR, { message });
        s.end();
      });
      setTimeout(() => server.close(), 1000).unref();
      reject(new RendezvousError(message));
    };
    server.on('connection', (sock) => {
      if (done) return sock.destroy();
      prepare(sock);
      all.add(sock);
      let peer = -1;
      const reader = new FrameReader(
        (type, _tag, body) => {
          if (peer >= 0) return t.onFrame(peer, type, _tag, body);
          if (type !== HELLO) return sock.destroy();
          const h = parseJson(body) as Partial<Hello> | undefined;
          if (!h || h.magic !== MAGIC) return sock.destroy();
          const r = h.rank as number;
          if (h.worldSize !== o.worldSize)
            return fail(
              `world size mismatch: rank ${r} has WORLD_SIZE=${h.worldSize}, rank 0 has WORLD_SIZE=${o.worldSize}`,
            );
          if (!Number.isInteger(r) || r < 1 || r >= o.worldSize)
            return fail(`a process joined as rank ${r}, outside 1..${o.worldSize - 1} (WORLD_SIZE=${o.worldSize})`);
          if (joined.has(r))
            return fail(`two processes joined as rank ${r} (from ${joined.get(r)!.host} and ${sock.remoteAddress})`);
          if (h.codeVersion !== o.codeVersion)
            return fail(
              `code version mismatch: rank ${r} runs ${JSON.stringify(h.codeVersion)}, rank 0 runs ${JSON.stringify(o.codeVersion)}`,
            );
          if (h.configHash !== o.configHash)
            return fail(
              `config mismatch: rank ${r} has config hash ${JSON.stringify(h.configHash)}, rank 0 has ${JSON.stringify(o.configHash)}`,
            );
          peer = r;
          reader.identified = true;
          joined.set(r, {
            sock,
            host: (sock.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
            port: h.port as number,
          });
          if (joined.size < o.worldSize - 1) return;
          done = true;
          clearTimeout(timer);
          server.close();
          const peers = [{ host: o.masterAddr, port: o.masterPort }];
          for (let i = 1; i < o.worldSize; i++) peers.push({ host: joined.get(i)!.host, port: joined.get(i)!.port });
          for (const [i, j] of joined) {
            t.adopt(i, j.sock);
            writeJson(j.sock, TABLE, { session, peers });
          }
          resolve(t);
        },
        () => sock.destroy(),
      );
      sock.on('data', (c: Buffer) => {
        if (peer >= 0) t.onBytes(peer);
        reader.push(c);
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        all.delete(sock);
        if (!done && peer >= 0 && joined.get(peer)?.sock === sock) joined.delete(peer);
      });
    });
  });
}

/** Rank r > 0: listen for higher ranks, join rank 0, then connect to every lower rank. */
async function rendezvousWorker(o: ConnectOptions): Promise<TcpTransport> {
  const t = new TcpTransport(o.rank, o.worldSize, o.timeoutMs);
  const deadline = Date.now() + o.rendezvousTimeoutMs;
  const server = net.createServer();
  await listen(server, 0, o.bindAddr);
  const myPort = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  let table: { session: string; peers: { host: string; port: number }[] } | undefined;
  const pendingPeers: { rank: number; session: string; sock: net.Socket; reader: FrameReader }[] = [];

  return new Promise<TcpTransport>((resolve, reject) => {
    let done = false;
    // Rank 0 reports a failed rendezvous itself; wait a little longer so its message (naming who is missing) arrives first.
    const timer = setTimeout(() => {
      const missing = [];
      for (let r = 0; r < o.worldSize; r++) if (r !== o.rank && !t.links[r]) missing.push(r);
      fail(
        table
          ? `rendezvous timed out after ${secs(o.rendezvousTimeoutMs)}: rank ${o.rank} has no connection to rank(s) ${rankList(missing)}`
          : `rendezvous timed out after ${secs(o.rendezvousTimeoutMs)}: rank 0 at ${o.masterAddr}:${o.masterPort} did not answer rank ${o.rank} (is it running, with the same MASTER_ADDR/MASTER_PORT?)`,
      );
    }, o.rendezvousTimeoutMs + 2000);
    const fail = (message: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      for (const s of sockets) s.destroy();
      reject(new RendezvousError(message));
    };
    const checkDone = () => {
      if (done || !table) return;
      for (let r = 0; r < o.worldSize; r++) if (r !== o.rank && !t.links[r]) return;
      done = true;
      clearTimeout(timer);
      server.close();
      resolve(t);
    };
    const acceptPeer = (p: (typeof pendingPeers)[number]) => {
      if (p.session !== table!.session || p.rank <= o.rank || p.rank >= o.worldSize || t.links[p.rank])
        return p.sock.destroy();
      p.reader.identified = true;
      t.adopt(p.rank, p.sock);
      checkDone();
    };

    server.on('connection', (sock) => {
      if (done) return sock.destroy();
      prepare(sock);
      sockets.add(sock);
      let peer = -1;
      const reader = new FrameReader(
        (type, tag, body) => {
          if (peer >= 0) return t.onFrame(peer, type, tag, body);
          const m = type === PEER ? parseJson(body) : undefined;
          if (!m || m.magic !== MAGIC || typeof m.rank !== 'number') return sock.destroy();
          peer = m.rank;
          const p = { rank: m.rank, session: String(m.session), sock, reader };
          if (table) acceptPeer(p);
          else pendingPeers.push(p);
        },
        () => sock.destroy(),
      );
      sock.on('data', (c: Buffer) => {
        if (peer >= 0) t.onBytes(peer);
        reader.push(c);
      });
      sock.on('error', () => {});
      sock.on('close', () => sockets.delete(sock));
    });

    void (async () => {
      let master: net.Socket;
      try {
        master = await connectRetry(o.masterAddr, o.masterPort, deadline, `rank 0 (MASTER_ADDR:MASTER_PORT)`);
      } catch (e) {
        return fail(`rendezvous failed for rank ${o.rank}: ${(e as Error).message}`);
      }
      if (done) return master.destroy();
      prepare(master);
      sockets.add(master);
      let identified = false;
      const reader = new FrameReader(
        (type, tag, body) => {
          if (identified) return t.onFrame(0, type, tag, body);
          const m = parseJson(body);
          if (type === ERROR && m) return fail(String(m.message));
          if (type !== TABLE || !m || !Array.isArray(m.peers) || typeof m.session !== 'string') {
            return fail(
              `rank 0 at ${o.masterAddr}:${o.masterPort} answered with something that is not a yuan rendezvous`,
            );
          }
          identified = true;
          reader.identified = true;
          table = m as unknown as typeof table;
          t.adopt(0, master);
          for (const p of pendingPeers.splice(0)) acceptPeer(p);
          for (let r = 1; r < o.rank; r++) {
            const addr = table!.peers[r]!;
            void connectRetry(addr.host, addr.port, deadline, `rank ${r}`).then(
              (sock) => {
                if (done) return sock.destroy();
                prepare(sock);
                sockets.add(sock);
                const pr = new FrameReader(
                  (ty, tg, b) => t.onFrame(r, ty, tg, b),
                  () => sock.destroy(),
                );
                pr.identified = true;
                sock.on('data', (c: Buffer) => {
                  t.onBytes(r);
                  pr.push(c);
                });
                sock.on('error', () => {});
                writeJson(sock, PEER, { magic: MAGIC, rank: o.rank, session: table!.session });
                t.adopt(r, sock);
                checkDone();
              },
              (e: Error) => fail(`rendezvous failed for rank ${o.rank}: ${e.message}`),
            );
          }
          checkDone();
        },
        () => fail(`rank 0 at ${o.masterAddr}:${o.masterPort} answered with something that is not a yuan rendezvous`),
      );
      master.on('data', (c: Buffer) => {
        if (identified) t.onBytes(0);
        reader.push(c);
      });
      master.on('error', () => {});
      master.on('close', () => {
        if (!identified)
          fail(
            `rank 0 at ${o.masterAddr}:${o.masterPort} closed the connection during the rendezvous (is that port used by something else?)`,
          );
      });
      const hello: Hello = {
        magic: MAGIC,
        rank: o.rank,
        worldSize: o.worldSize,
        configHash: o.configHash,
        codeVersion: o.codeVersion,
        port: myPort,
      };
      writeJson(master, HELLO, hello);
    })();
  });
}

/** The `tcp` transport plugin: processes on one or many hosts; rank 0 listens at MASTER_ADDR:MASTER_PORT. */
export const tcpTransport: TransportPlugin = {
  kind: 'transport',
  name: 'tcp',
  description:
    'TCP sockets (node:net), a full mesh after a rendezvous at MASTER_ADDR:MASTER_PORT; length-prefixed frames, Nagle off',
  defaults: {},
  ranks: 'processes',
  async connect(o: ConnectOptions): Promise<Transport> {
    return o.rank === 0 ? rendezvousMaster(o) : rendezvousWorker(o);
  },
};
