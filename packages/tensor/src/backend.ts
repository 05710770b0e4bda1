import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import path from 'node:path';
import { YuanError } from '@yuan/core';
import { tf } from './tf.js';
import { useFusedOps, type FusedOps } from './fused.js';
import { patchWasmBackend } from './wasm-fixes.js';

/** Backend names yuan knows, best first. */
export const BACKEND_ORDER = ['tensorflow-gpu', 'tensorflow', 'native', 'wasm', 'cpu'] as const;

/** A backend name accepted by `--backend` / `YUAN_BACKEND`. */
export type BackendName = (typeof BACKEND_ORDER)[number];

/** What happened when one backend was tried. */
export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  detail: string;
}

/** The backend in use and why: what was tried, in order, with the reason each was or was not taken. */
export interface BackendReport {
  name: BackendName;
  reason: string;
  attempts: BackendAttempt[];
  tfjsVersion: string;
  /** Threads the backend computes with. */
  threads: number;
}

const require = createRequire(import.meta.url);
let current: BackendReport | undefined;

function nativeAddonPresent(pkg: string): string | undefined {
  let root: string;
  try {
    root = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return `${pkg} is not installed (an optional peer dependency: \`npm install ${pkg}@4.22.0\` to use it)`;
  }
  const lib = path.join(root, 'lib');
  const found = existsSync(lib) && readdirSync(lib).some((d) => existsSync(path.join(lib, d, 'tfjs_binding.node')));
  return found ? undefined : `${pkg} is installed but its native addon was not built (its install script did not run, as in this repository where pnpm's allowBuilds turns it off, or it could not download libtensorflow)`;
}

async function tryNode(pkg: string): Promise<string | undefined> {
  const missing = nativeAddonPresent(pkg);
  if (missing) return missing;
  try {
    require(pkg);
  } catch (e) {
    return `${pkg} failed to load: ${(e as Error).message.split('\n')[0]}`;
  }
  return (await tf.setBackend('tensorflow')) ? undefined : `${pkg} loaded but its backend did not initialise`;
}

// The optional native package, imported by a computed name so that neither tsc nor the bundler needs it present.
const NATIVE_PACKAGE: string = '@yuan/tensor-native';
let nativeThreads = 1;

async function tryBackend(name: BackendName): Promise<string | undefined> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryNode('@tensorflow/tfjs-node-gpu');
    case 'tensorflow':
      return tryNode('@tensorflow/tfjs-node');
    case 'native':
      try {
        // Optional package: an OpenBLAS addon built at install time (skipped when OpenBLAS is missing).
        const native = (await import(NATIVE_PACKAGE)) as Omit<FusedOps, 'backend'> & { registerNativeBackend(): { threads: number } };
        nativeThreads = native.registerNativeBackend().threads;
        useFusedOps({ backend: 'native', rmsNorm: native.rmsNorm, swigluActivation: native.swigluActivation, adamwUpdate: native.adamwUpdate, causalAttention: native.causalAttention });
        return (await tf.setBackend('native')) ? undefined : 'native backend did not initialise';
      } catch (e) {
        return `native failed: ${(e as Error).message.split('\n')[0]}`;
      }
    case 'wasm':
      try {
        await import('@tensorflow/tfjs-backend-wasm');
        if (!(await tf.setBackend('wasm'))) return 'wasm backend did not initialise';
        patchWasmBackend();
        return undefined;
      } catch (e) {
        return `wasm failed: ${(e as Error).message.split('\n')[0]}`;
      }
    case 'cpu':
      return (await tf.setBackend('cpu')) ? undefined : 'cpu backend did not initialise';
  }
}

const WHY: Record<BackendName, string> = {
  'tensorflow-gpu': 'libtensorflow with CUDA (fastest)',
  tensorflow: 'native libtensorflow on the CPU',
  native: 'OpenBLAS addon (@yuan/tensor-native): multi-threaded BLAS matMul and native kernels',
  wasm: 'WebAssembly with SIMD, one thread in Node (about 14x the cpu backend)',
  cpu: 'pure JavaScript (slowest, always available)',
};

/**
 * Selects the best TensorFlow.js backend that loads (tensorflow-gpu, tensorflow, native, wasm, cpu), or the one named by
 * `prefer` / the `YUAN_BACKEND` environment variable (an error if that one does not load). Idempotent per name.
 */
export async function initBackend(prefer: string | undefined = process.env.YUAN_BACKEND): Promise<BackendReport> {
  const wanted = prefer?.trim() || undefined;
  if (wanted && !(BACKEND_ORDER as readonly string[]).includes(wanted)) {
    throw new YuanError('backend', `unknown backend "${wanted}" (backends: ${BACKEND_ORDER.join(', ')})`);
  }
  if (current && (!wanted || current.name === wanted)) return current;
  const attempts: BackendAttempt[] = [];
  for (const name of wanted ? [wanted as BackendName] : BACKEND_ORDER) {
    const failure = await tryBackend(name);
    attempts.push({ name, ok: !failure, detail: failure ?? WHY[name] });
    if (!failure) {
      current = {
        name,
        reason: wanted ? `requested (${WHY[name]})` : `best that loads: ${WHY[name]}`,
        attempts,
        tfjsVersion: tf.version.tfjs,
        threads: name === 'wasm' || name === 'cpu' ? 1 : name === 'native' ? nativeThreads : cpus().length,
      };
      return current;
    }
  }
  throw new YuanError('backend', `backend "${wanted}" is not available: ${attempts[attempts.length - 1].detail}`);
}

/** The report of the selected backend, or undefined before `initBackend`. */
export function backendReport(): BackendReport | undefined {
  return current;
}
