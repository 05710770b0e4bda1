import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { configDefaults } from 'vitest/config';

/** The file suffix of a system test: multi-process, cluster, network-namespace, npm-install or Python-yardstick. */
export const SYSTEM_TEST = '.system.test.ts';

/**
 * Which test files a package's `vitest run` takes, by vitest's mode: the default (`test` target, `pnpm test`) takes
 * the unit tests, `src/**\/*.test.ts` and `test/**\/*.test.ts` without the `*.system.test.ts` files; `--mode system`
 * (`test:system` target, `pnpm test:system`) takes only those. `root` is the package folder (the config's
 * `import.meta.dirname`). Errors: a package that holds system tests but has no `test:system` script, since neither
 * target would run them.
 */
export function testFiles(mode: string, root: string): { include: string[]; exclude: string[] } {
  const dirs = ['src', 'test'];
  const system = dirs.flatMap((dir) => systemTests(root, dir));
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name?: string;
    scripts?: Record<string, string>;
  };
  if (system.length > 0 && !pkg.scripts?.['test:system']) {
    throw new Error(
      `${pkg.name}: ${system[0]} is a system test, but package.json has no "test:system" script to run it`,
    );
  }
  if (mode === 'system')
    return { include: dirs.map((d) => `${d}/**/*${SYSTEM_TEST}`), exclude: [...configDefaults.exclude] };
  return { include: dirs.map((d) => `${d}/**/*.test.ts`), exclude: [...configDefaults.exclude, `**/*${SYSTEM_TEST}`] };
}

/** The `*.system.test.ts` files under `root/dir`, relative to `root`. */
function systemTests(root: string, dir: string): string[] {
  if (!existsSync(path.join(root, dir))) return [];
  return (readdirSync(path.join(root, dir), { recursive: true }) as string[])
    .filter((f) => f.endsWith(SYSTEM_TEST) && !f.split(path.sep).includes('node_modules'))
    .map((f) => path.join(dir, f));
}
