import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const addon = fileURLToPath(new URL('../build/Release/yuan_native.node', import.meta.url));

/**
 * Loads the built package in a fresh process with `env` and prints how its idle workers wait and which OpenMP settings
 * it leaves in the environment afterwards (none of its own), or the error.
 */
function loadWith(
  env: Record<string, string>,
  field: 'workers' | 'decodeWorkers' = 'workers',
): { out: string; err: string } {
  const script =
    `const m = await import(${JSON.stringify(dist)});` +
    (field === 'workers'
      ? 'try { const { workers } = m.registerNativeBackend(); console.log(JSON.stringify({ workers, left: ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT"].filter((v) => process.env[v]) })); }'
      : 'try { console.log(m.registerNativeBackend().decodeWorkers); }') +
    'catch (e) { console.log(e.message); }';
  const clean = { ...process.env };
  delete clean.OMP_WAIT_POLICY;
  delete clean.GOMP_SPINCOUNT;
  delete clean.YUAN_THREAD_SPIN;
  delete clean.YUAN_DECODE_SPIN_US;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...clean, ...env },
  });
  return { out: r.stdout.trim(), err: r.stderr };
}

describe.skipIf(!existsSync(addon) || !existsSync(dist))('OpenMP waits of the addon (needs a build)', () => {
  it('idle workers sleep by default; YUAN_THREAD_SPIN=N lets them spin N iterations; a bad value is one line', () => {
    expect(JSON.parse(loadWith({}).out)).toEqual({ workers: 'sleep', left: [] });
    expect(JSON.parse(loadWith({ YUAN_THREAD_SPIN: '30000' }).out)).toEqual({ workers: 'spin 30000', left: [] });
    expect(loadWith({ YUAN_THREAD_SPIN: 'fast' }).out).toBe(
      'native addon failed to load: YUAN_THREAD_SPIN=fast must be a count of spin iterations (e.g. 30000) or auto',
    );
    // an explicit OpenMP setting wins, and stays
    expect(JSON.parse(loadWith({ YUAN_THREAD_SPIN: '30000', OMP_WAIT_POLICY: 'ACTIVE' }).out)).toEqual({
      workers: 'as set (OMP_WAIT_POLICY=ACTIVE)',
      left: ['OMP_WAIT_POLICY'],
    });
  });

  it('idle decode workers spin 1000 µs by default; YUAN_DECODE_SPIN_US sets it; a bad value is one line', () => {
    expect(loadWith({}, 'decodeWorkers').out).toBe('spin 1000 µs, then sleep');
    expect(loadWith({ YUAN_DECODE_SPIN_US: '0' }, 'decodeWorkers').out).toBe('sleep');
    expect(loadWith({ YUAN_DECODE_SPIN_US: '250' }, 'decodeWorkers').out).toBe('spin 250 µs, then sleep');
    expect(loadWith({ YUAN_DECODE_SPIN_US: '1ms' }, 'decodeWorkers').out).toBe(
      'YUAN_DECODE_SPIN_US=1ms must be the microseconds (0 to 10000000) an idle decode worker spins before it sleeps',
    );
  });

  it('YUAN_THREAD_SPIN=auto spins on an idle machine and sleeps beside other work', async () => {
    const auto = { YUAN_THREAD_SPIN: 'auto', YUAN_NATIVE_THREADS: '1' };
    // one decode thread and no other work: spin (this test's own vitest process idles while it waits)
    const idle = JSON.parse(loadWith(auto).out).workers as string;
    // two busy loops beside it: more than the cores minus the one decode thread
    const hogs = Array.from({ length: 2 }, () =>
      spawn(process.execPath, ['-e', 'const t = Date.now(); while (Date.now() - t < 3000);'], { stdio: 'ignore' }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const busy = JSON.parse(loadWith(auto).out).workers as string;
    for (const h of hogs) h.kill();
    expect(busy).toMatch(/^sleep \(YUAN_THREAD_SPIN=auto: \d+\.\d of \d+ cores busy\)$/);
    // on a machine that CI shares the cores may be busy anyway: then both sleep, and the idle case says nothing more
    expect(idle).toMatch(/^(spin 30000|sleep) \(YUAN_THREAD_SPIN=auto: \d+\.\d of \d+ cores busy\)$/);
  });
});
