import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const addon = fileURLToPath(new URL('../build/Release/yuan_native.node', import.meta.url));

/** Loads the built package in a fresh process with `env` and prints the OpenMP wait settings it leaves, or the error. */
function loadWith(env: Record<string, string>): { out: string; err: string } {
  const script =
    `const m = await import(${JSON.stringify(dist)});` +
    'try { m.registerNativeBackend(); console.log(JSON.stringify({ policy: process.env.OMP_WAIT_POLICY ?? null, spin: process.env.GOMP_SPINCOUNT ?? null })); }' +
    'catch (e) { console.log(e.message); }';
  const clean = { ...process.env };
  delete clean.OMP_WAIT_POLICY;
  delete clean.GOMP_SPINCOUNT;
  delete clean.YUAN_THREAD_SPIN;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...clean, ...env },
  });
  return { out: r.stdout.trim(), err: r.stderr };
}

describe.skipIf(!existsSync(addon) || !existsSync(dist))('OpenMP waits of the addon (needs a build)', () => {
  it('idle workers sleep by default; YUAN_THREAD_SPIN=N lets them spin N iterations; a bad value is one line', () => {
    expect(JSON.parse(loadWith({}).out)).toEqual({ policy: 'PASSIVE', spin: null });
    expect(JSON.parse(loadWith({ YUAN_THREAD_SPIN: '30000' }).out)).toEqual({ policy: null, spin: '30000' });
    expect(loadWith({ YUAN_THREAD_SPIN: 'fast' }).out).toBe(
      'native addon failed to load: YUAN_THREAD_SPIN=fast must be a count of spin iterations (e.g. 30000)',
    );
  });
});
