import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const fixtures = path.resolve(__dirname, 'fixtures');
export const tcpRank = path.join(fixtures, 'tcp-rank.mjs');

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs a command to its end (killed after `limitMs`), collecting output. */
export function run(
  cmd: string,
  args: string[],
  env: Record<string, string | undefined> = {},
  limitMs = 60_000,
): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out, err });
    });
  });
}

/** Starts `world` tcp ranks of a scenario with torchrun variables; `env(rank)` adds or overrides variables. */
export function runRanks(
  world: number,
  scenario: string,
  args: object,
  env: (rank: number) => Record<string, string | undefined>,
): Promise<Exit[]> {
  return Promise.all(
    Array.from({ length: world }, (_, rank) =>
      run(process.execPath, [tcpRank, scenario, JSON.stringify(args)], {
        RANK: String(rank),
        WORLD_SIZE: String(world),
        MASTER_ADDR: '127.0.0.1',
        ...env(rank),
      }),
    ),
  );
}

/** The JSON after "RESULT " in a rank's output. */
export function result(e: Exit): { errors: string[]; [k: string]: unknown } {
  const line = e.out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT (code ${e.code}, signal ${e.signal}): ${e.err.trim()}`);
  return JSON.parse(line.slice(7));
}
