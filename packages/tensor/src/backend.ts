import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import path from 'node:path';
import { modulePlugins, moduleRegistry, YuanError, type PluginBase, type PluginRegistry } from '@yuan/core';
import { tf } from './tf.js';
import { useFusedOps, type FusedOps } from './fused.js';
import { patchWasmBackend } from './wasm-fixes.js';

/** What a backend plugin's `activate` set up. */
export interface BackendActivation {
  /** Threads the backend computes with. */
  threads: number;
  /** The compute library under the backend where it names one (the native backend: which BLAS build it is linked with). */
  library?: string;
  /** Single-kernel ops the backend supplies (RMSNorm, the SwiGLU activation, the AdamW update), used while it is active. */
  fused?: Omit<FusedOps, 'backend'>;
}

/**
 * A tensor backend (registry kind `backend`, declared here): a TensorFlow.js backend yuan can compute on. Backends are
 * chosen as TensorFlow.js chooses among those registered with `tf.registerBackend(name, factory, priority)`: the highest
 * priority that loads wins, with tfjs's own numbers (cpu 1, wasm 2, tfjs-node 3), unless one is asked for by name.
 * A package provides one in its `plugins` list as any plugin (`@yuan/tensor-native`'s `native`, a third party's).
 */
export interface BackendPlugin extends PluginBase<'backend', Record<string, never>> {
  /** Selection order: higher is tried first (TensorFlow.js's `registerBackend` priority). */
  readonly priority: number;
  /**
   * Loads the backend, registers it with TensorFlow.js if it is not yet, and makes it the current one (`tf.setBackend`).
   * Rejects with a one-line reason when it cannot (not installed, not built, failed to initialise).
   */
  activate(): Promise<BackendActivation>;
}

declare module '@yuan/core' {
  interface PluginKinds {
    backend: BackendPlugin;
  }
}

/** A backend name accepted by `--backend` / `YUAN_BACKEND`: a registered backend plugin's name. */
export type BackendName = string;

/** What happened when one backend was tried. */
export interface BackendAttempt {
  name: BackendName;
  /** The backend plugin's priority. */
  priority: number;
  ok: boolean;
  /** Why it was not taken, or what it is. */
  detail: string;
}

/** The backend in use and why: what was tried, in priority order, with the reason each was or was not taken. */
export interface BackendReport {
  name: BackendName;
  reason: string;
  attempts: BackendAttempt[];
  /** Every registered backend by priority (highest first), tried or not. */
  registered: { name: BackendName; priority: number; description: string }[];
  tfjsVersion: string;
  /** Threads the backend computes with. */
  threads: number;
  /** The compute library under the backend, where its activation named one (e.g. the native backend's BLAS build). */
  library?: string;
}

const require = createRequire(import.meta.url);
let current: BackendReport | undefined;
/** The registry `current` was chosen from (a later call with no name and the same registry keeps it). */
let currentFrom: PluginRegistry | undefined;

function nativeAddonPresent(pkg: string): string | undefined {
  let root: string;
  try {
    root = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return `${pkg} is not installed (an optional peer dependency: \`npm install ${pkg}@4.22.0\` to use it)`;
  }
  const lib = path.join(root, 'lib');
  const found = existsSync(lib) && readdirSync(lib).some((d) => existsSync(path.join(lib, d, 'tfjs_binding.node')));
  return found
    ? undefined
    : `${pkg} is installed but its native addon was not built (its install script did not run, as in this repository where pnpm's allowBuilds turns it off, or it could not download libtensorflow)`;
}

/** A backend of TensorFlow.js's Node bindings (`@tensorflow/tfjs-node[-gpu]`, optional peers): libtensorflow. */
function tfjsNode(name: string, pkg: string, priority: number, description: string): BackendPlugin {
  return {
    kind: 'backend',
    name,
    description,
    defaults: {},
    priority,
    async activate() {
      const missing = nativeAddonPresent(pkg);
      if (missing) throw new Error(missing);
      try {
        require(pkg);
      } catch (e) {
        throw new Error(`${pkg} failed to load: ${(e as Error).message.split('\n')[0]}`);
      }
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not initialise`);
      return { threads: cpus().length };
    },
  };
}

/** `tensorflow-gpu`: libtensorflow with CUDA; above tfjs-node's priority 3 (both register tfjs's `tensorflow`). */
const tensorflowGpuBackend = tfjsNode(
  'tensorflow-gpu',
  '@tensorflow/tfjs-node-gpu',
  4,
  'libtensorflow with CUDA (fastest)',
);
/** `tensorflow`: libtensorflow on the CPU, tfjs-node's priority 3. */
const tensorflowBackend = tfjsNode('tensorflow', '@tensorflow/tfjs-node', 3, 'native libtensorflow on the CPU');

/** `wasm`: TensorFlow.js's WebAssembly backend (priority 2, as it registers itself), with yuan's kernel patches. */
const wasmBackend: BackendPlugin = {
  kind: 'backend',
  name: 'wasm',
  description: 'WebAssembly with SIMD, one thread in Node (about 14x the cpu backend)',
  defaults: {},
  priority: 2,
  async activate() {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
    } catch (e) {
      throw new Error(`wasm failed: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
    patchWasmBackend();
    return { threads: 1 };
  },
};

/** `cpu`: TensorFlow.js's pure JavaScript backend (priority 1, as it registers itself). */
const cpuBackend: BackendPlugin = {
  kind: 'backend',
  name: 'cpu',
  description: 'pure JavaScript (slowest, always available)',
  defaults: {},
  priority: 1,
  async activate() {
    if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not initialise');
    return { threads: 1 };
  },
};

// The optional native package (an OpenBLAS addon built at install time), imported by a computed name so that neither
// tsc nor the bundler needs it present. Importing it loads no addon: its `native` backend plugin does, when activated.
const NATIVE_PACKAGE: string = '@yuan/tensor-native';
const nativePlugins: PluginBase<string, unknown>[] = await import(NATIVE_PACKAGE).then(
  (mod: unknown) => modulePlugins(mod, `"${NATIVE_PACKAGE}"`),
  () => [],
);

/**
 * The backends this package provides, by priority: `tensorflow-gpu` (4) and `tensorflow` (3) where the optional
 * `@tensorflow/tfjs-node[-gpu]` peer is installed, `wasm` (2), `cpu` (1), and the plugins of `@yuan/tensor-native`
 * (its `native`, 2.5) where that optional dependency is installed.
 */
export const backendPlugins: readonly PluginBase<string, unknown>[] = [
  tensorflowGpuBackend,
  tensorflowBackend,
  ...nativePlugins,
  wasmBackend,
  cpuBackend,
];

let own: PluginRegistry | undefined;

function isBackend(p: PluginBase<string, unknown>): p is BackendPlugin {
  return typeof (p as BackendPlugin).priority === 'number' && typeof (p as BackendPlugin).activate === 'function';
}

/** The registered backends, highest priority first (ties by name); a malformed one is an error naming it. */
function byPriority(registry: PluginRegistry): BackendPlugin[] {
  const list = registry.list('backend');
  for (const p of list) {
    if (!isBackend(p))
      throw new YuanError(
        'backend',
        `backend plugin "${p.name}" (from ${registry.sourceOf('backend', p.name)}) needs a numeric priority and an activate() method`,
      );
  }
  return (list as BackendPlugin[]).sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
}

/**
 * Selects a TensorFlow.js backend among the backend plugins of `registry` (default: a registry of this package's own,
 * `backendPlugins`): the one named by `prefer` / the `YUAN_BACKEND` environment variable (an error if it does not load),
 * else the highest priority that loads. Idempotent: the same name, or no name and the same registry, keeps the backend. Errors: an unknown name (listing the registered backends by
 * priority), a requested backend that does not load (with its reason), none that loads.
 */
export async function initBackend(
  prefer: string | undefined = process.env.YUAN_BACKEND,
  registry?: PluginRegistry,
): Promise<BackendReport> {
  const from = registry ?? (own ??= moduleRegistry({ plugins: backendPlugins }, '@yuan/tensor'));
  const backends = byPriority(from);
  const wanted = prefer?.trim() || undefined;
  if (wanted && !backends.some((b) => b.name === wanted)) {
    throw new YuanError(
      'backend',
      `unknown backend "${wanted}" (backends: ${backends.map((b) => b.name).join(', ') || 'none registered'})`,
    );
  }
  if (current && (wanted ? current.name === wanted : currentFrom === from)) return current;
  const attempts: BackendAttempt[] = [];
  for (const plugin of wanted ? backends.filter((b) => b.name === wanted) : backends) {
    let activation: BackendActivation;
    try {
      activation = await plugin.activate();
    } catch (e) {
      attempts.push({
        name: plugin.name,
        priority: plugin.priority,
        ok: false,
        detail: (e as Error).message.split('\n')[0],
      });
      continue;
    }
    if (activation.fused) useFusedOps({ backend: tf.getBackend(), ...activation.fused });
    attempts.push({ name: plugin.name, priority: plugin.priority, ok: true, detail: plugin.description });
    current = {
      name: plugin.name,
      reason: wanted ? `requested (${plugin.description})` : `highest priority that loads: ${plugin.description}`,
      attempts,
      registered: backends.map((b) => ({ name: b.name, priority: b.priority, description: b.description })),
      tfjsVersion: tf.version.tfjs,
      threads: activation.threads,
      ...(activation.library ? { library: activation.library } : {}),
    };
    currentFrom = from;
    return current;
  }
  if (wanted)
    throw new YuanError('backend', `backend "${wanted}" is not available: ${attempts[attempts.length - 1]?.detail}`);
  throw new YuanError(
    'backend',
    `no backend loads (${attempts.map((a) => `${a.name}: ${a.detail}`).join('; ') || 'none registered'})`,
  );
}

/** The report of the selected backend, or undefined before `initBackend`. */
export function backendReport(): BackendReport | undefined {
  return current;
}
