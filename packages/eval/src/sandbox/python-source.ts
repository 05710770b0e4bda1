import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { YuanError } from '@yuan/core';

/**
 * The sandbox's Python files, read at run time from the `python/` folder next to this module: `src/sandbox/python/`
 * in the workspace, `dist/python/` in the built package (tsup.config.ts copies them there; `files` ships `dist`).
 * guard.py: the audit hook; runner.py: how the program process runs a program and proves it ran to its end;
 * oneshot.py: the wrapper a prepared sandbox runs; launcher.py: the sandbox's PID 1; server.py: the fork server.
 */
type PythonFile = 'guard' | 'runner' | 'oneshot' | 'launcher' | 'server';

const texts = new Map<PythonFile, string>();

function read(name: PythonFile): string {
  let text = texts.get(name);
  if (text === undefined) {
    const url = new URL(`./python/${name}.py`, import.meta.url);
    try {
      text = readFileSync(url, 'utf8');
    } catch (e) {
      throw new YuanError(
        'sandbox',
        `cannot read the sandbox's ${fileURLToPath(url)} (${(e as Error).message}); the package ships it beside its code`,
      );
    }
    texts.set(name, text);
  }
  return text;
}

/** The one-shot wrapper written as `guard.py` into a prepared sandbox's work directory (guard + runner + oneshot). */
export function oneShotPy(): string {
  return [read('guard'), read('runner'), read('oneshot')].join('\n');
}

/** The launcher run as `python3 -I -B -c TEXT MODE WORKDIR LIMITS_JSON` in modes `ns` and `plain`. */
export function launcherPy(): string {
  return read('launcher');
}

/** The fork server's text for modes `ns-serve` and `plain-serve` (guard + runner + server + launcher). */
export function serverPy(): string {
  return [read('guard'), read('runner'), read('server'), read('launcher')].join('\n');
}
