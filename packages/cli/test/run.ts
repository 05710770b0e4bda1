import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { main } from '../src/main.js';

/** The repository root and the shared folder CI places beside it. */
export const repoRoot = path.resolve(__dirname, '../../..');
export const shared = path.resolve(repoRoot, '..', 'shared');

/** Runs the CLI in-process and returns exit code, stdout and stderr. */
export async function yuan(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Runs the built CLI (packages/cli/dist/bin.js) as a child process. */
export function yuanProcess(...argv: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'packages/cli/dist/bin.js'), ...argv], {
    encoding: 'utf8',
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
