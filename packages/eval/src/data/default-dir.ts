import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The default data folder: `../shared/datasets` beside the repository root, found by walking up from `from` to the
 * folder holding `pnpm-workspace.yaml`; falls back to `../shared/datasets` of the working directory.
 */
export function defaultDataDir(from: string = process.cwd()): string {
  let dir = path.resolve(from);
  for (;;) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return path.resolve(dir, '..', 'shared', 'datasets');
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(from, '..', 'shared', 'datasets');
    dir = parent;
  }
}
