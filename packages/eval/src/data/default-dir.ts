import { existsSync } from 'node:fs';
import path from 'node:path';

function workspaceRoot(from: string): string | undefined {
  let dir = path.resolve(from);
  for (;;) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * The default data folder: `../shared/datasets` beside the repository root, the root being the first folder holding
 * `pnpm-workspace.yaml` above one of `starts` (default: the working directory, then this package's own location);
 * falls back to `../shared/datasets` of the working directory.
 */
export function defaultDataDir(...starts: string[]): string {
  const candidates = starts.length ? starts : [process.cwd(), import.meta.dirname ?? process.cwd()];
  for (const start of candidates) {
    const root = workspaceRoot(start);
    if (root) return path.resolve(root, '..', 'shared', 'datasets');
  }
  return path.resolve(process.cwd(), '..', 'shared', 'datasets');
}
