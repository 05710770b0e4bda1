import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { isolationNote, Sandbox, type SandboxOptions } from '../src/index.js';

// Every hostile program is written so that it would exit 0 only if the attack worked, except the background daemon:
// its main program may well exit 0 (the kernel layer lets it fork), and what is checked is that no process survives.
const canaryDir = mkdtempSync(path.join(os.tmpdir(), 'yuan-canary-'));
const escapeFile = path.join(canaryDir, 'escaped.txt');
const victimFile = path.join(canaryDir, 'victim.txt');
const secret = `s3cret-${process.pid}-${Date.now()}`;
let server: net.Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  writeFileSync(victimFile, 'keep me');
  process.env.YUAN_SANDBOX_TEST_SECRET = secret;
  server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => {
  server.close();
  rmSync(canaryDir, { recursive: true, force: true });
});

/** A program that first runs `prelude`, then tries to write outside the work dir and to connect out; exits 0 if either worked. */
function attackAfter(prelude: string): string {
  return [
    prelude,
    'done = 0',
    'try:',
    `    open("/tmp/yuan-sandbox-escape-${process.pid}", "w").write("x"); done += 1`,
    'except Exception as e:',
    '    print(e)',
    'try:',
    '    import socket',
    `    socket.create_connection(("127.0.0.1", ${port}), timeout=1); done += 1`,
    'except Exception as e:',
    '    print(e)',
    'assert done > 0',
  ].join('\n');
}

const hostile: Record<string, () => string> = {
  'infinite loop': () => 'while True:\n    pass\n',
  'fork bomb': () => 'import os\nwhile True:\n    os.fork()\n',
  'background daemon': () =>
    'import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\ntime.sleep(0.3)\n',
  'allocate 10 GB': () => 'x = bytearray(10 * 1024 ** 3)\nx[-1] = 1\n',
  'write outside the work dir': () =>
    `open(${JSON.stringify(escapeFile)}, "w").write("escaped")\nopen("/tmp/yuan-sandbox-escape-${process.pid}", "w").write("x")\n`,
  'delete files': () => `import os\nos.remove(${JSON.stringify(victimFile)})\n`,
  'open a network socket': () =>
    `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=1)\ns.sendall(b"hello")\n`,
  "read the parent's environment": () =>
    [
      'import os, glob',
      'found = repr(dict(os.environ))',
      `for p in ["/proc/${process.pid}/environ"] + glob.glob("/proc/*/environ"):`,
      '    try:',
      '        found += open(p, "rb").read().decode("latin-1")',
      '    except Exception:',
      '        pass',
      `assert ${JSON.stringify(secret.slice(0, 6))} + ${JSON.stringify(secret.slice(6))} in found`,
      'print(found)',
    ].join('\n'),
  'kill the parent': () =>
    `import os, signal\nos.kill(${process.pid}, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\n`,
  'flood the output': () => 'import sys\nwhile True:\n    sys.stdout.write("x" * 65536)\n',
  // rebinding the guard's state (its module globals; os.path and builtins it calls), then writing outside and connecting
  'rebind the audit hook globals, then write and connect': () =>
    attackAfter('import __main__\n__main__._DENY = frozenset()\n__main__.WORKDIR = "/"\n'),
  'replace os.path.realpath under the audit hook, then write': () =>
    attackAfter('import os.path\nos.path.realpath = lambda p: os.getcwd() + "/x"\n'),
  'replace builtins under the audit hook, then write': () =>
    attackAfter('import builtins\nbuiltins.isinstance = lambda *a: True\n'),
  'write outside through a directory descriptor': () =>
    `import os\nfd = os.open("/tmp", os.O_RDONLY)\nos.close(os.open("yuan-sandbox-escape-${process.pid}", os.O_WRONLY | os.O_CREAT, dir_fd=fd))\n`,
  'look for the audit hook with trace and profile functions, then write and connect': () =>
    attackAfter(
      [
        'import sys, threading',
        'names = set()',
        'def tracer(frame, event, arg):',
        '    names.add(frame.f_code.co_name)',
        '    return tracer',
        'sys.settrace(tracer)',
        'sys.setprofile(lambda frame, event, arg: names.add(frame.f_code.co_name))',
        'for attempt in range(3):',
        '    try:',
        `        open("/tmp/yuan-sandbox-escape-${process.pid}", "w")`,
        '    except Exception:',
        '        pass',
        'sys.settrace(None)',
        'sys.setprofile(None)',
        'print(sorted(names))',
        'if names & {"hook", "realpath", "within"}:',
        '    raise SystemExit(0)  # a trace function saw the audit hook: the attack worked',
      ].join('\n'),
    ),
  'find the audit hook through gc': () =>
    [
      'import gc',
      'hooks = [o for o in gc.get_objects() if getattr(o, "__name__", "") == "hook" and getattr(o, "__closure__", None)]',
      'for h in hooks:',
      '    for c in h.__closure__:',
      '        if isinstance(c.cell_contents, frozenset):',
      '            c.cell_contents = frozenset()',
      `open(${JSON.stringify(escapeFile)}, "w").write("escaped")`,
    ].join('\n'),
};

// What only the kernel layer can refuse: reading the host's world-readable files and seeing its filesystem.
const repoFile = fileURLToPath(new URL('../package.json', import.meta.url));
const hostileNamespaces: Record<string, () => string> = {
  'read /etc/hostname': () => 'print(open("/etc/hostname").read())\n',
  'read /etc/passwd': () => 'print(open("/etc/passwd").read())\n',
  'read a file of the repository': () => `print(open(${JSON.stringify(repoFile)}).read())\n`,
  'read a file next to the work dir': () => `import os\nprint(open(${JSON.stringify(victimFile)}).read())\n`,
  'list / beyond what Python needs': () =>
    'import os\nseen = set(os.listdir("/"))\nprint(sorted(seen))\nassert seen & {"etc", "home", "root", "work", "var", "opt", "srv", "mnt", "run"} - {"etc"} or os.path.exists("/etc/hostname") or os.path.exists("/etc/passwd")\n',
  'list the temp dir': () => 'import os, tempfile\nprint(os.listdir("/tmp"))\nassert len(os.listdir("/tmp")) > 1\n',
  'write into /usr': () => 'open("/usr/lib/yuan-escape", "w").write("x")\n',
  'remount the root read-write': () =>
    'import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mount(None, b"/", None, 32 | 4096, None) == 0\nopen("/escaped", "w").write("x")\n',
};

// Python that looks for the runner's tokens (32 hex digits) wherever a program can reach from its frames (locals,
// globals, containers, `__reduce_ex__` of iterators and partials) and writes everything it finds to every descriptor.
const STEAL = [
  'import os, re, sys',
  'HEX = re.compile(rb"[0-9a-f]{32}")',
  'found = set()',
  'def search(o, depth=0, seen=None):',
  '    seen = {} if seen is None else seen',
  '    if depth > 40 or id(o) in seen:',
  '        return',
  '    seen[id(o)] = o  # kept alive, so that no later object reuses its id',
  '    if isinstance(o, (bytes, bytearray, str)):',
  '        found.update(HEX.findall(o.encode() if isinstance(o, str) else bytes(o)))',
  '    elif isinstance(o, (list, tuple, set, frozenset)):',
  '        for x in list(o):',
  '            search(x, depth + 1, seen)',
  '    elif isinstance(o, dict):',
  '        for x in list(o.values()):',
  '            search(x, depth + 1, seen)',
  '    elif type(o).__name__ == "frame":',
  '        search(o.f_locals, depth + 1, seen)',
  '        search(o.f_back, depth + 1, seen)',
  '    elif o is not None and not isinstance(o, (int, float, type(sys))):',
  '        try:',
  '            search(o.__reduce_ex__(2), depth + 1, seen)',
  '        except Exception:',
  '            pass',
  'def steal(*_):',
  '    frame = sys._getframe()',
  '    while frame is not None:',
  '        search(frame.f_locals)',
  '        frame = frame.f_back',
  '    for token in found:',
  '        for fd in range(3, 32):',
  '            try:',
  '                os.write(fd, token + b"\\n")',
  '            except OSError:',
  '                pass',
].join('\n');

/**
 * Programs that try to be judged as run to their end without being so, each with the verdict it must get
 * (`completed` of the program, then `checks`); `guard`: only with the audit hook on (without it a program can read its
 * own memory: the documented limit of the token's secrecy).
 */
const forgers: Record<
  string,
  { program: string; checks?: string[]; completed: boolean; passedChecks?: boolean[]; guard?: true }
> = {
  'print a pass and exit 0': {
    program: 'print("passed")\nprint("__yuan_tests_passed__ 99")\nimport os\nos._exit(0)\n',
    completed: false,
  },
  'write junk on every descriptor, then exit 0': {
    program:
      'import os\nfor fd in range(64):\n    try:\n        os.write(fd, b"0" * 32 + b"\\n" + os.urandom(64))\n    except OSError:\n        pass\nraise SystemExit(0)\n',
    completed: false,
  },
  'read the token pipe, then exit 0': {
    program:
      'import os\nfor fd in range(3, 64):\n    try:\n        os.set_blocking(fd, False)\n        data = os.read(fd, 4096)\n        for dst in range(3, 64):\n            os.write(dst, data)\n    except OSError:\n        pass\nos._exit(0)\n',
    completed: false,
  },
  "search the runner's frames for tokens, then exit 0": {
    program: `${STEAL}\nsteal()\nos._exit(0)\n`,
    completed: false,
  },
  "search the runner's frames from checks that exit early": {
    program: `${STEAL}\n`,
    checks: ['steal()\nraise SystemExit(0)', 'steal()\nos._exit(0)'],
    completed: true,
    passedChecks: [false, false],
  },
  'a trace function looks for the next check token': {
    program: `${STEAL}\ndef tracer(frame, event, arg):\n    steal()\n    return tracer\nsys.settrace(tracer)\nsys.setprofile(lambda *a: steal())\n`,
    checks: ['assert False', 'assert False', 'raise SystemExit(0)'],
    completed: true,
    passedChecks: [false, false, false],
  },
  'a signal handler and a thread look for tokens while checks run': {
    program: [
      STEAL,
      'import signal, threading, time',
      'frames = []',
      'f = sys._getframe()',
      'while f is not None:',
      '    frames.append(f)',
      '    f = f.f_back',
      'def watch():',
      '    while True:',
      '        for f in frames:',
      '            search(f.f_locals)',
      '        steal()',
      '        time.sleep(0.005)',
      'threading.Thread(target=watch, daemon=True).start()',
      'signal.signal(signal.SIGALRM, steal)',
      'signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)',
    ].join('\n'),
    checks: ['time.sleep(0.05)\nassert False', 'assert False', 'time.sleep(0.05)\nassert False'],
    completed: true,
    passedChecks: [false, false, false],
  },
  'read its own memory for tokens, then exit 0': {
    program: [
      'import os, re',
      'found = set()',
      'try:',
      '    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb") as mem:',
      '        for line in maps:',
      '            span, perms = line.split()[:2]',
      '            if "r" in perms and "w" in perms:',
      '                a, b = (int(x, 16) for x in span.split("-"))',
      '                try:',
      '                    mem.seek(a)',
      '                    found.update(re.findall(rb"[0-9a-f]{32}", mem.read(b - a)))',
      '                except OSError:',
      '                    pass',
      'except OSError as e:',
      '    print(e)',
      'for token in found:',
      '    os.write(3, token + b"\\n")',
      'os._exit(0)',
    ].join('\n'),
    completed: false,
    guard: true,
  },
};

/** Correct programs the guard must leave as they are: each must run to its end (as a module that is not `__main__`). */
const correct: Record<string, string> = {
  'doctest.testmod() at module level': 'import doctest\ndoctest.testmod()\nassert doctest.testmod().failed == 0\n',
  'a trace and a profile function':
    'import sys\ncalls = []\nsys.settrace(lambda f, e, a: calls.append(e))\ndef g():\n    return 1\ng()\nsys.settrace(None)\nsys.setprofile(lambda f, e, a: None)\nsys.setprofile(None)\nassert calls\n',
  'an if __name__ == "__main__" block (not run)':
    'def f():\n    return 1\nif __name__ == "__main__":\n    input()\n    raise RuntimeError("run as a script")\nassert __name__ != "__main__"\n',
  'pickle a class it defines':
    'import pickle\nclass Point:\n    def __init__(self, x):\n        self.x = x\nassert pickle.loads(pickle.dumps(Point(3))).x == 3\n',
  'dataclasses and type hints':
    'from __future__ import annotations\nimport dataclasses, typing\n@dataclasses.dataclass\nclass P:\n    x: int\ndef f(p: P) -> int:\n    return p.x\nassert typing.get_type_hints(f)["p"] is P\n',
  'files and folders in the work dir (fwalk, rmtree, temp files)':
    'import os, shutil, tempfile\nos.makedirs("a/b")\nopen("a/b/f", "w").write("x")\nassert [d for d, _, _, _ in os.fwalk("a")] == ["a", "a/b"]\nshutil.rmtree("a")\nwith tempfile.TemporaryFile() as f:\n    f.write(b"x")\nwith tempfile.TemporaryDirectory() as d:\n    open(os.path.join(d, "f"), "w").write("x")\n',
  'megabytes of output':
    'import sys\nfor _ in range(8):\n    print("x" * (1 << 20))\n    sys.stderr.write("y" * (1 << 20))\n',
};

function strayProcesses(marker: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(marker)) found.push(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      /* exited */
    }
  }
  return found;
}

/** The launchers of the fork servers under `tmpRoot` (not their children, which share their command line). */
function serverPids(tmpRoot: string): number[] {
  const serving = new Set(
    strayProcesses(tmpRoot)
      .filter((p) => p.includes('-serve ') && !/^\d+: unshare /.test(p))
      .map((p) => Number(p.split(':')[0])),
  );
  const parentOf = (pid: number) => {
    try {
      return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    } catch {
      return 0;
    }
  };
  return [...serving].filter((pid) => !serving.has(parentOf(pid)));
}

// A program must not affect the next one run by the same fork server, nor the server: each attack runs, then a probe
// (or the next verdicts) shows whether anything of it persisted.
const SHM_KEY = 0x5955414e;
function crossProgram(sandbox: Sandbox, tmpRoot: string, serverProcesses: () => number, unguarded: boolean) {
  const probeFiles = [
    'import os',
    'here = sorted(os.listdir("."))',
    'up = sorted(os.listdir(".."))',
    'print("clean" if here == ["program.py"] and up == [os.path.basename(os.getcwd())] else "dirty %r %r" % (here, up))',
  ].join('\n');
  it('files a program leaves in its work dir (and next to it) are gone for the next program', async () => {
    const attack = await sandbox.run(
      [
        'import os, tempfile',
        'for d in (".", os.environ["HOME"], tempfile.gettempdir()):',
        '    open(os.path.join(d, "leftover.txt"), "w").write("x")',
        'os.mkdir("locked"); open("locked/f", "w").write("x"); os.chmod("locked", 0)',
        'try:',
        '    open("../leftover-next-to.txt", "w").write("x")',
        'except Exception as e:',
        '    print(e)',
        'print(sorted(os.listdir(".")))',
      ].join('\n'),
    );
    expect(attack.stdout).toContain('leftover.txt');
    const probe = await sandbox.run(probeFiles);
    expect(probe.status, probe.stderr).toBe('ok');
    expect(probe.stdout.trim()).toBe('clean');
  });
  it('a background process does not survive its program', async () => {
    const attack = await sandbox.run(
      'import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n        open("late.txt", "w").write("x")\n    os._exit(0)\ntime.sleep(0.3)\n',
    );
    if (!unguarded) expect(attack.status).not.toBe('ok');
    await new Promise((r) => setTimeout(r, 200));
    expect(strayProcesses(tmpRoot)).toHaveLength(serverProcesses());
    const probe = await sandbox.run(probeFiles);
    expect(probe.stdout.trim()).toBe('clean');
  });
  it.runIf(unguarded)('System V shared memory a program creates is gone for the next program', async () => {
    const attack = await sandbox.run(
      `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.shmget(${SHM_KEY}, 4096, 0o1000 | 0o666) >= 0, ctypes.get_errno()\nprint("made")\n`,
    );
    expect(attack.stdout.trim(), attack.stderr).toBe('made');
    const probe = await sandbox.run(
      `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint("dirty" if libc.shmget(${SHM_KEY}, 0, 0) >= 0 else "clean")\n`,
    );
    expect(probe.stdout.trim(), probe.stderr).toBe('clean');
  });
  it('killing the server and writing fake replies into every descriptor cannot change the next verdicts', async () => {
    const fake = '{"code": 0, "signal": null, "timedOut": false, "truncated": false, "stdout": "NDUK", "stderr": ""}';
    const attack = await sandbox.run(
      [
        'import os, signal, struct',
        `fake = struct.pack(">I", ${fake.length}) + ${JSON.stringify(fake)}.encode()`,
        'me = os.getpid()',
        'pids = [os.getppid(), 1, -1] + [int(p) for p in os.listdir("/proc") if p.isdigit()]',
        'for p in pids:',
        '    for fd in (0, 1, 2, 3, 4, 5):',
        '        try:',
        '            with open("/proc/%d/fd/%d" % (p, fd), "wb") as f:',
        '                f.write(fake * 4)',
        '        except Exception as e:',
        '            pass',
        'for fd in range(64):',
        '    try:',
        '        os.write(fd, fake * 4)',
        '    except Exception:',
        '        pass',
        'for p in pids:',
        '    if p != me:',
        '        try:',
        '            os.kill(p, signal.SIGKILL)',
        '        except Exception as e:',
        '            print(p, e)',
        'raise SystemExit(5)',
      ].join('\n'),
    );
    expect(attack.status).toBe('failed');
    expect(attack.exitCode).toBe(5);
    const failing = await sandbox.run('raise SystemExit(3)');
    expect(failing.status).toBe('failed');
    expect(failing.exitCode).toBe(3);
    const good = await sandbox.run('print(40 + 5)');
    expect(good.status).toBe('ok');
    expect(good.stdout).toBe('45\n');
  });
  it('a server killed from outside during a run: the program is run again in a fresh server, never passed by default', async () => {
    const pending = sandbox.run('import time\ntime.sleep(1)\nraise SystemExit(4)\n');
    await new Promise((r) => setTimeout(r, 300));
    const [pid] = serverPids(tmpRoot);
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    const result = await pending;
    expect(result.status).toBe('failed');
    expect(result.exitCode).toBe(4);
    expect((await sandbox.run('print(1)')).stdout).toBe('1\n');
  });
  it('a server that keeps dying fails the program as a sandbox fault, never ok', async () => {
    let done = false;
    const pending = sandbox.run('import time\ntime.sleep(1.5)\n').finally(() => (done = true));
    while (!done) {
      for (const pid of serverPids(tmpRoot)) process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
    }
    const result = await pending;
    expect(result.status).toBe('setup-failed');
    expect(result.stderr).toMatch(/fork server failed twice/);
    expect((await sandbox.run('print(2)')).stdout).toBe('2\n');
  });
}

async function suite(label: string, options: SandboxOptions, required?: 'namespaces', warm = 0, servers = 0) {
  const tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'yuan-hostile-'));
  chmodSync(tmpRoot, 0o755); // the sandbox drops to nobody when the tests run as root
  const sandbox = (await Sandbox.create({ ...options, tmpRoot, limits: { timeoutMs: 2000 } }))
    .warm(warm)
    .serve(servers);
  // with a warm pool, the prepared (idle) sandboxes' folders and launchers are expected; nothing else may remain
  const prepared = () => new Set(readdirSync(tmpRoot).map((d) => path.join(tmpRoot, d)));
  // a fork server's children carry its command line: there, exactly the servers' own processes may remain
  let serverProcesses = 0;
  const leftovers = () =>
    servers > 0
      ? strayProcesses(tmpRoot).length === serverProcesses
        ? []
        : strayProcesses(tmpRoot)
      : strayProcesses(tmpRoot).filter((p) => ![...prepared()].some((d) => p.includes(`${d} `) || p.includes(`${d}/`)));
  const skip = required === 'namespaces' && sandbox.isolation !== 'namespaces';
  describe.skipIf(skip)(`${label} (isolation ${sandbox.isolation})`, () => {
    beforeAll(async () => {
      if (servers === 0) return;
      await Promise.all(Array.from({ length: servers }, () => sandbox.run('pass')));
      serverProcesses = strayProcesses(tmpRoot).length;
      expect(serverProcesses).toBeGreaterThanOrEqual(servers);
    });
    afterAll(async () => {
      await sandbox.close();
      expect(readdirSync(tmpRoot)).toEqual([]);
      rmSync(tmpRoot, { recursive: true, force: true });
    });
    it.each(Object.keys(hostile))('%s fails cleanly and leaves nothing behind', async (name) => {
      const result = await sandbox.run(hostile[name]!());
      if (name !== 'background daemon') expect(result.status, `${name}: ${result.stderr.slice(-300)}`).not.toBe('ok');
      expect(result.status).not.toBe('setup-failed');
      expect(result.stdout).not.toContain(secret);
      expect(existsSync(escapeFile)).toBe(false);
      expect(existsSync(`/tmp/yuan-sandbox-escape-${process.pid}`)).toBe(false);
      expect(readFileSync(victimFile, 'utf8')).toBe('keep me');
      expect(connections).toBe(0);
      expect(readdirSync(tmpRoot).length).toBeLessThanOrEqual(warm + servers); // the work directory is gone
      await new Promise((r) => setTimeout(r, 100));
      expect(leftovers()).toEqual([]);
      if (name === 'infinite loop' || name === 'flood the output') expect(result.status).toBe('timeout');
      if (name === 'flood the output') expect(result.truncated).toBe(true);
    });
    it.each(Object.keys(forgers))('%s does not pass as run to its end', async (name) => {
      const f = forgers[name]!;
      if (f.guard && options.guard === false) return;
      const result = await sandbox.run(f.program, { module: 'program', checks: f.checks ?? [] });
      expect(result.completed, `${name}: ${result.stdout.slice(-300)} ${result.stderr.slice(-300)}`).toBe(f.completed);
      expect(result.checks).toEqual(f.passedChecks ?? []);
    });
    it.each(Object.keys(correct))('%s runs to its end', async (name) => {
      const result = await sandbox.run(correct[name]!, { module: 'program' });
      expect(result.completed, `${name}: ${result.stderr.slice(-500)}`).toBe(true);
      expect(result.status).toBe('ok');
    });
    if (sandbox.isolation === 'namespaces') {
      it.each(Object.keys(hostileNamespaces))('%s is refused (namespaces show nothing of the host)', async (name) => {
        const result = await sandbox.run(hostileNamespaces[name]!());
        expect(result.status, `${name}: ${result.stdout.slice(-300)} ${result.stderr.slice(-300)}`).toBe('failed');
        expect(result.stdout).not.toContain('keep me');
        expect(result.stdout).not.toContain('"name"');
      });
    } else {
      it('reports itself as no security boundary', async () => {
        expect(sandbox.isolation).toBe('plain');
        expect(sandbox.note).toMatch(/NOT a security boundary/);
        expect(isolationNote('plain')).toBe(sandbox.note);
        const result = await sandbox.run('print(1)');
        expect(result.isolation).toBe('plain');
      });
    }
    if (servers === 1) crossProgram(sandbox, tmpRoot, () => serverProcesses, options.guard === false);
    it('runs a good program after all of them', async () => {
      const result = await sandbox.run('print(sum(range(10)))');
      expect(result.status).toBe('ok');
      expect(result.stdout.trim()).toBe('45');
    });
  });
}

await suite(
  'kernel layer alone: namespaces and limits, no Python guard',
  { isolation: 'namespaces', guard: false },
  'namespaces',
);
await suite('Python guard and limits, no namespaces', { isolation: 'plain', guard: true });
await suite('default sandbox', {});
await suite('warm pool of prepared sandboxes (namespaces and guard)', {}, 'namespaces', 2);
await suite(
  'fork server, kernel layer alone: namespaces and limits, no Python guard',
  { isolation: 'namespaces', guard: false },
  'namespaces',
  0,
  1,
);
await suite(
  'fork server, Python guard and limits, no namespaces',
  { isolation: 'plain', guard: true },
  undefined,
  0,
  1,
);
await suite('fork servers (namespaces and guard)', {}, 'namespaces', 0, 2);
