import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { chown, mkdtemp, realpath, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, YuanError } from '@yuan/core';
import { launcherPy, oneShotPy, serverPy } from './python-source.js';
import { resolveLimits, type SandboxLimits } from './limits.js';
import { removeTree } from './remove.js';

/** How a sandbox isolates programs: kernel namespaces plus limits, or limits alone where namespaces are unavailable. */
export type Isolation = 'namespaces' | 'plain';

/**
 * What an isolation mode protects, in one line (shown in HumanEval results and `yuan eval`'s output). `plain` is not a
 * security boundary: only resource limits and a Python audit hook stand between the program and the user's files.
 */
export function isolationNote(isolation: Isolation): string {
  return isolation === 'plain'
    ? 'plain: NOT a security boundary (resource limits and a Python audit hook only; the program can read every file this user can, and code that defeats the hook can write them and use the network); use namespaces for untrusted code'
    : 'namespaces: private read-only root with only the interpreter and its standard library, tmpfs work dir, no network, own PID namespace, no capabilities, resource limits';
}

/** Options of a sandbox. Defaults: isolation `auto` (namespaces when the probe succeeds), guard on, `python3`. */
export interface SandboxOptions {
  limits?: Partial<SandboxLimits>;
  isolation?: Isolation | 'auto';
  /** Install the in-process Python audit-hook layer (default true). Tests turn it off to check the kernel layer alone. */
  guard?: boolean;
  python?: string;
  /** Where throwaway work directories are made (default: the OS temp dir); it must be traversable by `nobody` when running as root. */
  tmpRoot?: string;
}

/** How `Sandbox.run` runs a program. Defaults: module `__main__` (a script), no checks. */
export interface RunOptions {
  /**
   * The name of the module the program runs in (its `__name__`): `__main__` runs it as a script; any other Python
   * identifier runs it as openai/human-eval does (`exec` in a module that is not `__main__`, so an
   * `if __name__ == "__main__":` block is skipped, and `__main__` is an empty module). A name that is not an
   * identifier is a `ConfigError`.
   */
  module?: string;
  /**
   * Python snippets run one by one in the program's namespace once the program ran to its end; each is judged on its
   * own (`SandboxResult.checks`): one that raises does not stop the next. At most 256.
   */
  checks?: string[];
}

/**
 * The outcome of one sandboxed program. `status` is how the process ended (`ok`: exit status 0 within the limits);
 * `completed` is whether the program itself ran to its end, which an exit status cannot tell (`sys.exit(0)` and
 * `os._exit(0)` are `ok` but not `completed`).
 */
export interface SandboxResult {
  status: 'ok' | 'failed' | 'timeout' | 'setup-failed';
  /**
   * Whether the program's module code ran to its end without an exception, within the time limit. Positive evidence:
   * a random token made per run by the judging side (the fork server, or Node) is written back by the program
   * process's runner over a pipe of its own only after `exec` of the program returned (see src/sandbox/python/runner.py);
   * an exit of any kind before that (`sys.exit`, `exit()`, `os._exit`, a signal, the limits) leaves it false.
   */
  completed: boolean;
  /** Per check of `RunOptions.checks`, in order: whether it ran to its end without an exception (same evidence). */
  checks: boolean[];
  /** The isolation the program ran under (`plain` is not a security boundary: see `isolationNote`). */
  isolation: Isolation;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Whether stdout or stderr went past `outputBytes` and was cut. */
  truncated: boolean;
  durationMs: number;
}

const SETUP_FAILED = 121;
/** Bytes kept of the verdict pipe (tokens are 33 bytes each; a program that floods it only fails itself). */
const VERDICT_BYTES = 1 << 16;
const MAX_CHECKS = 256;

/** One run as the Python side reads it: the module name, the base64 program and checks (a prepared sandbox adds the tokens). */
interface Job {
  module: string;
  program: string;
  checks: string[];
}

function jobOf(program: string, options: RunOptions): Job {
  const module = options.module ?? '__main__';
  if (typeof module !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(module)) {
    throw new ConfigError(`sandbox run: module ${JSON.stringify(module)}: expected a Python identifier`);
  }
  const checks = options.checks ?? [];
  if (!Array.isArray(checks) || checks.length > MAX_CHECKS || checks.some((c) => typeof c !== 'string')) {
    throw new ConfigError(`sandbox run: checks: expected at most ${MAX_CHECKS} strings`);
  }
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return { module, program: b64(program), checks: checks.map(b64) };
}

const NOBODY = 65534;
const probes = new Map<string, Promise<string | null>>();
/** Work directories of prepared sandboxes not yet used: removed if the process exits without `close()`. */
const idleDirs = new Set<string>();
let exitHook = false;
function trackIdle(dir: string): void {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const d of idleDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  idleDirs.add(dir);
}

/** The resource limits the Python launcher applies, from the sandbox's limits (CPU and wall time rounded up, plus slack). */
function launcherLimits(limits: SandboxLimits) {
  return {
    memoryBytes: limits.memoryBytes,
    cpuSeconds: Math.ceil(limits.timeoutMs / 1000) + 1,
    wallSeconds: Math.ceil(limits.timeoutMs / 1000) + 2,
    processes: limits.processes,
    fileBytes: limits.fileBytes,
    openFiles: limits.openFiles,
    diskBytes: limits.diskBytes,
  };
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs untrusted Python programs one process tree each, in a throwaway directory, under limits; see README. */
export class Sandbox {
  private constructor(
    /** The isolation in force. */
    readonly isolation: Isolation,
    /** The limits in force. */
    readonly limits: SandboxLimits,
    private readonly guard: boolean,
    private readonly python: string,
    private readonly tmpRoot: string,
  ) {
    this.note = isolationNote(isolation);
  }

  /** One line on what the isolation in force protects (`plain`: that it is not a security boundary). */
  readonly note: string;

  /** Resolves options, probing once per Python whether namespaces work here; `namespaces` that do not work is an error. */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const limits = resolveLimits(options.limits);
    const python = options.python ?? 'python3';
    const wanted = options.isolation ?? 'auto';
    if (!['auto', 'namespaces', 'plain'].includes(wanted)) {
      throw new ConfigError(`sandbox isolation "${wanted}": expected auto, namespaces or plain`);
    }
    const tmpRoot = options.tmpRoot ?? os.tmpdir();
    let isolation: Isolation = 'plain';
    if (wanted !== 'plain') {
      let probe = probes.get(python);
      if (!probe) {
        // null when namespaces work, else why not
        probe = new Sandbox('namespaces', limits, false, python, os.tmpdir())
          .run('print("sandbox-probe-ok")')
          .then((r) =>
            r.status === 'ok' && r.stdout.trim() === 'sandbox-probe-ok'
              ? null
              : `${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`,
          )
          .catch((e: Error) => e.message);
        probes.set(python, probe);
      }
      const failure = await probe;
      if (failure !== null && wanted === 'namespaces') {
        throw new YuanError(
          'sandbox',
          `namespace isolation is unavailable here (unshare --user --net --pid --mount: ${failure})`,
        );
      }
      if (failure === null) isolation = 'namespaces';
    }
    return new Sandbox(isolation, limits, options.guard ?? true, python, tmpRoot);
  }

  /**
   * Keeps `count` sandboxes prepared ahead (namespaces made, mounts read-only, tmpfs mounted, launcher waiting for its
   * program), so a run only delivers its program; each prepared sandbox still serves exactly one program. 0 (the
   * default) prepares each sandbox when its run starts. Prepared sandboxes do not keep Node alive; `close()` ends them.
   */
  warm(count: number): this {
    if (!Number.isInteger(count) || count < 0)
      throw new ConfigError(`sandbox warm pool size ${count}: expected an integer >= 0`);
    this.poolSize = count;
    this.refill();
    return this;
  }

  /** Ends the prepared sandboxes and removes their work directories. */
  async close(): Promise<void> {
    this.poolSize = 0;
    this.serverCount = 0;
    const servers = [...this.servers];
    this.servers.clear();
    this.idleServers.length = 0;
    await Promise.all(servers.map((s) => s.close()));
    const idle = this.ready.splice(0);
    const pending = [...this.preparing];
    await Promise.all(
      [...idle, ...pending.map((p) => p.catch(() => undefined))].map(async (slot) => {
        const s = await slot;
        if (s) await s.discard();
      }),
    );
  }

  /**
   * Keeps `count` fork servers (one per worker): each is one sandbox set up once (namespaces, private root, no network),
   * whose Python forks a fresh child per program with its own mount, PID and IPC namespaces, tmpfs work directory,
   * limits and guard (see python/server.py). `run` then waits for an idle server. A server that dies or stops answering is
   * replaced and the program is run once more in the new one; a second failure is `setup-failed`, never `ok`.
   * 0 turns the servers off (one fresh sandbox per program). Idle servers do not keep Node alive; `close()` ends them.
   */
  serve(count: number): this {
    if (!Number.isInteger(count) || count < 0)
      throw new ConfigError(`sandbox fork servers ${count}: expected an integer >= 0`);
    this.serverCount = count;
    while (this.servers.size < count) this.idleServers.push(this.startServer());
    return this;
  }

  private serverCount = 0;
  private readonly servers = new Set<ForkServer>();
  private readonly idleServers: ForkServer[] = [];
  private readonly serverWaiters: ((s: ForkServer) => void)[] = [];

  private startServer(): ForkServer {
    const server = new ForkServer(this.limits, this.isolation, this.guard, this.python, this.tmpRoot);
    this.servers.add(server);
    return server;
  }

  private acquireServer(): Promise<ForkServer> {
    const idle = this.idleServers.shift();
    if (idle) return Promise.resolve(idle.dead ? this.replaceServer(idle) : idle);
    if (this.servers.size < this.serverCount) return Promise.resolve(this.startServer());
    return new Promise((resolve) => this.serverWaiters.push(resolve));
  }

  private replaceServer(dead: ForkServer): ForkServer {
    this.servers.delete(dead);
    void dead.close();
    return this.startServer();
  }

  private releaseServer(server: ForkServer): void {
    if (this.serverCount === 0 || !this.servers.has(server)) {
      this.servers.delete(server);
      void server.close();
      return;
    }
    const next = server.dead ? this.replaceServer(server) : server;
    const waiter = this.serverWaiters.shift();
    if (waiter) waiter(next);
    else this.idleServers.push(next);
  }

  private async runServed(job: Job): Promise<SandboxResult> {
    const started = performance.now();
    let fault = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      const server = await this.acquireServer();
      try {
        return await server.run(job);
      } catch (e) {
        fault = (e as Error).message;
        server.dead = true;
      } finally {
        this.releaseServer(server);
      }
    }
    return {
      status: 'setup-failed',
      completed: false,
      checks: job.checks.map(() => false),
      isolation: this.isolation,
      exitCode: null,
      signal: null,
      stdout: '',
      stderr: `sandbox setup failed: the fork server failed twice on this program (${fault})`,
      truncated: false,
      durationMs: performance.now() - started,
    };
  }

  private poolSize = 0;
  private readonly ready: Slot[] = [];
  private readonly preparing = new Set<Promise<Slot>>();

  private refill(): void {
    while (this.ready.length + this.preparing.size < this.poolSize) {
      const p = this.prepare();
      this.preparing.add(p);
      p.then(
        (slot) => {
          this.preparing.delete(p);
          if (this.poolSize > 0 && !slot.exited) {
            // an idle prepared sandbox must not keep the Node process alive; its launcher exits when stdin closes
            slot.setRef(false);
            trackIdle(slot.workdir);
            this.ready.push(slot);
          } else void slot.discard();
        },
        () => this.preparing.delete(p),
      );
    }
  }

  /**
   * Runs one Python program (and its checks, see `RunOptions`) to completion or to its limits; never throws for
   * anything the program does (bad options are a `ConfigError`). Whether the program ran to its end is
   * `result.completed`, not its exit status.
   */
  async run(program: string, options: RunOptions = {}): Promise<SandboxResult> {
    const job = jobOf(program, options);
    if (this.serverCount > 0) return this.runServed(job);
    let slot: Slot | undefined;
    while ((slot = this.ready.shift()) && slot.exited) await slot.discard(); // a prepared one that died is not used
    this.refill();
    return (slot ?? (await this.prepare())).start(job);
  }

  /** Makes a work directory and starts a launcher in it that sets the sandbox up and then waits for its program. */
  private async prepare(): Promise<Slot> {
    const limits = this.limits;
    const workdir = await realpath(await mkdtemp(path.join(this.tmpRoot, 'yuan-sbx-')));
    try {
      await writeFile(path.join(workdir, 'guard.py'), oneShotPy());
      const root = isRoot();
      if (root) {
        for (const f of ['', 'guard.py']) await chown(path.join(workdir, f), NOBODY, NOBODY);
      }
      const pyLimits = JSON.stringify({ ...launcherLimits(limits), guard: this.guard });
      const launcher = [
        this.python,
        '-I',
        '-B',
        '-c',
        launcherPy(),
        this.isolation === 'namespaces' ? 'ns' : 'plain',
        workdir,
        pyLimits,
      ];
      const [command, ...args] =
        this.isolation === 'namespaces'
          ? [
              'unshare',
              '--user',
              '--map-root-user',
              '--net',
              '--pid',
              '--fork',
              '--kill-child',
              '--mount',
              '--mount-proc',
              '--ipc',
              '--uts',
              ...launcher,
            ]
          : launcher;
      return await Slot.spawn(command!, args, workdir, root, this.limits, this.isolation);
    } catch (e) {
      await removeTree(workdir);
      throw e;
    }
  }
}

/** One prepared sandbox: a launcher process waiting on stdin for the one program it will run. */
class Slot {
  exited = false;
  private readonly out = {
    stdout: [] as Buffer[],
    stderr: [] as Buffer[],
    kept: { stdout: 0, stderr: 0 },
    truncated: false,
  };
  /** What came back on the verdict pipe (descriptor 3 of the launcher and of the program's Python). */
  private verdict: Buffer[] = [];
  private verdictBytes = 0;
  private closed!: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private timedOut = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly workdir: string,
    private readonly limits: SandboxLimits,
    private readonly isolation: Isolation,
  ) {}

  static spawn(
    command: string,
    args: string[],
    cwd: string,
    root: boolean,
    limits: SandboxLimits,
    isolation: Isolation,
  ): Promise<Slot> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        cwd,
        env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
        detached: true, // its own session and process group, killed as a whole
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'], // 3: the verdict pipe (see runner.py)
        ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
      });
      const slot = new Slot(child, cwd, limits, isolation);
      const collect = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
        const room = limits.outputBytes - slot.out.kept[which];
        if (chunk.length > room) slot.out.truncated = true;
        if (room > 0) {
          const part = chunk.subarray(0, room);
          slot.out[which].push(part);
          slot.out.kept[which] += part.length;
        }
      };
      child.stdout!.on('data', collect('stdout'));
      child.stderr!.on('data', collect('stderr'));
      (child.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => {
        const part = chunk.subarray(0, VERDICT_BYTES - slot.verdictBytes);
        if (part.length > 0) {
          slot.verdict.push(part);
          slot.verdictBytes += part.length;
        }
      });
      child.stdin!.on('error', () => undefined); // a launcher that died before reading its program
      child.on('exit', () => {
        slot.exited = true;
        slot.killGroup();
        slot.releasePipes();
      });
      slot.closed = new Promise((done) => child.on('close', (code, signal) => done({ code, signal })));
      child.once('error', (e) => reject(new YuanError('sandbox', `cannot start ${command}: ${e.message}`)));
      child.once('spawn', () => resolve(slot));
    });
  }

  setRef(on: boolean): void {
    const method = on ? 'ref' : 'unref';
    this.child[method]();
    for (const stream of this.child.stdio) {
      (stream as unknown as { [k: string]: (() => void) | undefined } | null)?.[method]?.();
    }
  }

  killGroup(): void {
    try {
      if (this.child.pid) process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  // a process that left the group can hold the pipes open: stop reading them shortly after the end
  releasePipes(): void {
    setTimeout(() => {
      this.child.stdout?.destroy();
      this.child.stderr?.destroy();
      (this.child.stdio[3] as (NodeJS.ReadableStream & { destroy(): void }) | null)?.destroy();
    }, 500).unref();
  }

  /** Ends an unused sandbox and removes its work directory. */
  async discard(): Promise<void> {
    idleDirs.delete(this.workdir);
    this.setRef(true); // wait for its end
    this.child.stdin?.destroy();
    this.killGroup();
    await this.closed.catch(() => undefined);
    await removeTree(this.workdir);
  }

  /**
   * Delivers the program with one fresh token per part, waits for the end or the wall-clock limit, judges which parts
   * ran to their end by the tokens that came back on the verdict pipe, and removes the work directory.
   */
  async start(job: Job): Promise<SandboxResult> {
    idleDirs.delete(this.workdir);
    this.setRef(true);
    const started = performance.now();
    const timer = setTimeout(() => {
      this.timedOut = true;
      this.killGroup();
      this.releasePipes();
    }, this.limits.timeoutMs);
    const tokens = [job.program, ...job.checks].map(() => randomBytes(16).toString('hex'));
    try {
      this.child.stdin!.end(Buffer.concat([Buffer.from('P'), Buffer.from(JSON.stringify({ ...job, tokens }), 'utf8')]));
      const { code, signal } = await this.closed;
      this.killGroup(); // stragglers that kept the group (plain mode; namespaces kill them with the PID namespace)
      const stderr = Buffer.concat(this.out.stderr).toString('utf8');
      const setupFailed = code === SETUP_FAILED && stderr.startsWith('sandbox setup failed');
      const verdict = Buffer.concat(this.verdict).toString('latin1');
      const [first, ...rest] = tokens.map((t) => verdict.includes(t));
      return {
        status: this.timedOut ? 'timeout' : setupFailed ? 'setup-failed' : code === 0 ? 'ok' : 'failed',
        completed: first!,
        checks: rest,
        isolation: this.isolation,
        exitCode: code,
        signal,
        stdout: Buffer.concat(this.out.stdout).toString('utf8'),
        stderr,
        truncated: this.out.truncated,
        durationMs: performance.now() - started,
      };
    } finally {
      clearTimeout(timer);
      await removeTree(this.workdir);
    }
  }
}

/** What the fork server answers for one program (see python/server.py). */
interface ServerReply {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
  completed: boolean;
  checks: boolean[];
  stdout: string;
  stderr: string;
}

/** One fork server: a sandbox set up once whose Python runs each program in a fresh forked child (see python/server.py). */
class ForkServer {
  dead = false;
  private readonly child: ChildProcess;
  private readonly workdir: string;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: ServerReply) => void; reject: (e: Error) => void } | undefined;
  private errors = '';
  private readonly ended: Promise<void>;

  constructor(
    private readonly limits: SandboxLimits,
    private readonly isolation: Isolation,
    guard: boolean,
    python: string,
    tmpRoot: string,
  ) {
    const root = isRoot();
    this.workdir = realpathSync(mkdtempSync(path.join(tmpRoot, 'yuan-srv-')));
    if (root) chownSync(this.workdir, NOBODY, NOBODY);
    trackIdle(this.workdir);
    const pyLimits = JSON.stringify({
      ...launcherLimits(limits),
      timeoutMs: limits.timeoutMs,
      outputBytes: limits.outputBytes,
      guard,
    });
    const ns = isolation === 'namespaces';
    const launcher = [python, '-I', '-B', '-c', serverPy(), ns ? 'ns-serve' : 'plain-serve', this.workdir, pyLimits];
    const [command, ...args] = ns
      ? [
          'unshare',
          '--user',
          '--map-root-user',
          '--net',
          '--pid',
          '--fork',
          '--kill-child',
          '--mount',
          '--mount-proc',
          '--ipc',
          '--uts',
          ...launcher,
        ]
      : launcher;
    this.child = spawn(command!, args, {
      cwd: this.workdir,
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
      detached: true, // its own session and process group, killed as a whole
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    this.child.stdout!.on('data', (chunk: Buffer) => this.receive(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.errors = (this.errors + chunk.toString('utf8')).slice(-2000);
    });
    this.child.stdin!.on('error', () => undefined); // a server that died: reported by its exit
    this.ended = new Promise((done) => {
      const end = (why: string) => {
        if (this.dead && !this.waiting) return done();
        this.dead = true;
        this.killGroup();
        this.waiting?.reject(
          new YuanError(
            'sandbox',
            `fork server ${why}${this.errors ? `: ${this.errors.trim().split('\n').pop()}` : ''}`,
          ),
        );
        this.waiting = undefined;
        done();
      };
      this.child.once('error', (e) => end(`cannot start ${command}: ${e.message}`));
      this.child.once('exit', (code, signal) => end(`ended (${signal ?? `exit ${code}`})`));
    });
    this.setRef(false);
  }

  /** Sends one job and waits for its reply; rejects when the server dies or stops answering. */
  async run(job: Job): Promise<SandboxResult> {
    if (this.dead) throw new YuanError('sandbox', 'fork server is not running');
    const started = performance.now();
    const source = Buffer.from(JSON.stringify(job), 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(source.length);
    this.setRef(true);
    // the server enforces the wall-clock limit itself; this only catches a server that stopped answering
    const watchdog = setTimeout(() => this.killGroup(), this.limits.timeoutMs + 10_000);
    try {
      const reply = await new Promise<ServerReply>((resolve, reject) => {
        this.waiting = { resolve, reject };
        this.child.stdin!.write(Buffer.concat([head, source]));
      });
      const stderr = Buffer.from(reply.stderr, 'base64').toString('utf8');
      const setupFailed = reply.code === SETUP_FAILED && stderr.startsWith('sandbox setup failed');
      return {
        status: reply.timedOut ? 'timeout' : setupFailed ? 'setup-failed' : reply.code === 0 ? 'ok' : 'failed',
        completed: reply.completed === true,
        checks: job.checks.map((_, i) => reply.checks?.[i] === true),
        isolation: this.isolation,
        exitCode: reply.code,
        signal: reply.signal,
        stdout: Buffer.from(reply.stdout, 'base64').toString('utf8'),
        stderr,
        truncated: reply.truncated,
        durationMs: performance.now() - started,
      };
    } finally {
      clearTimeout(watchdog);
      if (!this.dead) this.setRef(false);
    }
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    while (this.buffer.length >= 4) {
      const size = this.buffer.readUInt32BE(0);
      if (this.buffer.length < 4 + size) return;
      const frame = this.buffer.subarray(4, 4 + size).toString('utf8');
      this.buffer = this.buffer.subarray(4 + size);
      let reply: (ServerReply & { ready?: boolean }) | undefined;
      try {
        reply = JSON.parse(frame) as ServerReply & { ready?: boolean };
      } catch {
        this.killGroup(); // a garbled frame: the server is not trusted any more
        return;
      }
      if (reply.ready) continue;
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) waiting.resolve(reply);
      else this.killGroup(); // a reply nobody asked for
    }
  }

  private setRef(on: boolean): void {
    const method = on ? 'ref' : 'unref';
    this.child[method]();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) {
      (stream as unknown as { [k: string]: (() => void) | undefined } | null)?.[method]?.();
    }
  }

  private killGroup(): void {
    try {
      if (this.child.pid) process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  /** Ends the server and removes its work directory. */
  async close(): Promise<void> {
    this.dead = true;
    this.setRef(true);
    this.child.stdin?.destroy();
    this.killGroup();
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid) await this.ended;
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    idleDirs.delete(this.workdir);
    await removeTree(this.workdir);
  }
}
