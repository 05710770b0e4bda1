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
  'kill the parent': () => `import os, signal\nos.kill(${process.pid}, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\n`,
  'flood the output': () => 'import sys\nwhile True:\n    sys.stdout.write("x" * 65536)\n',
  // rebinding the guard's state (its module globals; os.path and builtins it calls), then writing outside and connecting
  'rebind the audit hook globals, then write and connect': () => attackAfter('import __main__\n__main__._DENY = frozenset()\n__main__.WORKDIR = "/"\n'),
  'replace os.path.realpath under the audit hook, then write': () => attackAfter('import os.path\nos.path.realpath = lambda p: os.getcwd() + "/x"\n'),
  'replace builtins under the audit hook, then write': () => attackAfter('import builtins\nbuiltins.isinstance = lambda *a: True\n'),
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

async function suite(label: string, options: SandboxOptions, required?: 'namespaces', warm = 0) {
  const tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'yuan-hostile-'));
  chmodSync(tmpRoot, 0o755); // the sandbox drops to nobody when the tests run as root
  const sandbox = (await Sandbox.create({ ...options, tmpRoot, limits: { timeoutMs: 2000 } })).warm(warm);
  // with a warm pool, the prepared (idle) sandboxes' folders and launchers are expected; nothing else may remain
  const prepared = () => new Set(readdirSync(tmpRoot).map((d) => path.join(tmpRoot, d)));
  const leftovers = () => strayProcesses(tmpRoot).filter((p) => ![...prepared()].some((d) => p.includes(`${d} `) || p.includes(`${d}/`)));
  const skip = required === 'namespaces' && sandbox.isolation !== 'namespaces';
  describe.skipIf(skip)(`${label} (isolation ${sandbox.isolation})`, () => {
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
      expect(readdirSync(tmpRoot).length).toBeLessThanOrEqual(warm); // the work directory is gone
      await new Promise((r) => setTimeout(r, 100));
      expect(leftovers()).toEqual([]);
      if (name === 'infinite loop' || name === 'flood the output') expect(result.status).toBe('timeout');
      if (name === 'flood the output') expect(result.truncated).toBe(true);
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
    it('runs a good program after all of them', async () => {
      const result = await sandbox.run('print(sum(range(10)))');
      expect(result.status).toBe('ok');
      expect(result.stdout.trim()).toBe('45');
    });
  });
}

await suite('kernel layer alone: namespaces and limits, no Python guard', { isolation: 'namespaces', guard: false }, 'namespaces');
await suite('Python guard and limits, no namespaces', { isolation: 'plain', guard: true });
await suite('default sandbox', {});
await suite('warm pool of prepared sandboxes (namespaces and guard)', {}, 'namespaces', 2);
