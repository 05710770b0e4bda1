import { spawn } from 'node:child_process';
import { chown, mkdtemp, realpath, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, YuanError } from '@yuan/core';
import { guardPy } from './guard-py.js';
import { LAUNCHER_PY } from './launcher-py.js';
import { resolveLimits, type SandboxLimits } from './limits.js';
import { removeTree } from './remove.js';

/** How a sandbox isolates programs: kernel namespaces plus limits, or limits alone where namespaces are unavailable. */
export type Isolation = 'namespaces' | 'plain';

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

/** The outcome of one sandboxed program: `ok` is exit status 0 within the limits. */
export interface SandboxResult {
  status: 'ok' | 'failed' | 'timeout' | 'setup-failed';
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Whether stdout or stderr went past `outputBytes` and was cut. */
  truncated: boolean;
  durationMs: number;
}

const SETUP_FAILED = 121;
const NOBODY = 65534;
const probes = new Map<string, Promise<string | null>>();

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
  ) {}

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
          .then((r) => (r.status === 'ok' && r.stdout.trim() === 'sandbox-probe-ok' ? null : `${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`))
          .catch((e: Error) => e.message);
        probes.set(python, probe);
      }
      const failure = await probe;
      if (failure !== null && wanted === 'namespaces') {
        throw new YuanError('sandbox', `namespace isolation is unavailable here (unshare --user --net --pid --mount: ${failure})`);
      }
      if (failure === null) isolation = 'namespaces';
    }
    return new Sandbox(isolation, limits, options.guard ?? true, python, tmpRoot);
  }

  /** Runs one Python program to completion or to its limits; never throws for anything the program does. */
  async run(program: string): Promise<SandboxResult> {
    const limits = this.limits;
    const workdir = await realpath(await mkdtemp(path.join(this.tmpRoot, 'yuan-sbx-')));
    try {
      await writeFile(path.join(workdir, 'program.py'), program);
      await writeFile(path.join(workdir, 'guard.py'), guardPy(workdir, this.guard));
      const root = isRoot();
      if (root) {
        for (const f of ['', 'program.py', 'guard.py']) await chown(path.join(workdir, f), NOBODY, NOBODY);
      }
      const pyLimits = JSON.stringify({
        memoryBytes: limits.memoryBytes,
        cpuSeconds: Math.ceil(limits.timeoutMs / 1000) + 1,
        wallSeconds: Math.ceil(limits.timeoutMs / 1000) + 2,
        processes: limits.processes,
        fileBytes: limits.fileBytes,
        openFiles: limits.openFiles,
        diskBytes: limits.diskBytes,
      });
      const launcher = [this.python, '-I', '-B', '-c', LAUNCHER_PY, this.isolation === 'namespaces' ? 'ns' : 'plain', workdir, pyLimits];
      const [command, ...args] =
        this.isolation === 'namespaces'
          ? ['unshare', '--user', '--map-root-user', '--net', '--pid', '--fork', '--kill-child', '--mount', '--mount-proc', '--ipc', '--uts', ...launcher]
          : launcher;
      return await this.spawnLimited(command!, args, workdir, root);
    } finally {
      await removeTree(workdir);
    }
  }

  private spawnLimited(command: string, args: string[], cwd: string, root: boolean): Promise<SandboxResult> {
    const { outputBytes, timeoutMs } = this.limits;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        cwd,
        env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
        detached: true, // its own session and process group, killed as a whole
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
      });
      const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], kept: { stdout: 0, stderr: 0 }, truncated: false };
      const collect = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
        const room = outputBytes - out.kept[which];
        if (chunk.length > room) out.truncated = true;
        if (room > 0) {
          const part = chunk.subarray(0, room);
          out[which].push(part);
          out.kept[which] += part.length;
        }
      };
      child.stdout.on('data', collect('stdout'));
      child.stderr.on('data', collect('stderr'));
      let timedOut = false;
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      };
      // a process that left the group can hold the pipes open: stop reading them shortly after the end
      const releasePipes = () =>
        setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
        }, 500).unref();
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
        releasePipes();
      }, timeoutMs);
      child.on('exit', () => {
        killGroup();
        releasePipes();
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new YuanError('sandbox', `cannot start ${command}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        killGroup(); // stragglers that kept the group (plain mode; namespaces kill them with the PID namespace)
        const stderr = Buffer.concat(out.stderr).toString('utf8');
        const setupFailed = code === SETUP_FAILED && stderr.startsWith('sandbox setup failed');
        resolve({
          status: timedOut ? 'timeout' : setupFailed ? 'setup-failed' : code === 0 ? 'ok' : 'failed',
          exitCode: code,
          signal,
          stdout: Buffer.concat(out.stdout).toString('utf8'),
          stderr,
          truncated: out.truncated,
          durationMs: performance.now() - started,
        });
      });
    });
  }
}
