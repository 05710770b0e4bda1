import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, and the shared folder CI places beside it. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const shared = path.resolve(repoRoot, '..', 'shared');

/** The built `yuan` binary. nx builds every dependency of this package (the CLI among them) before its tests. */
export const cliBin = path.join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');

/**
 * The path of the built CLI; throws (failing the test loudly, never skipping) when it is not built, with the command
 * that builds it.
 */
export function builtCli(): string {
  if (!existsSync(cliBin))
    throw new Error(`${cliBin} is not built: run \`pnpm build\` (or \`pnpm test\`, which builds first)`);
  return cliBin;
}

/** Runs the built CLI as a child process: exit code, stdout and stderr. */
export function yuanProcess(
  argv: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [builtCli(), ...argv], { encoding: 'utf8', ...opts });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
