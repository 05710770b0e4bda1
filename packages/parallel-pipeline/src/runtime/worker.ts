// The entry of one pipeline stage's worker thread (built as dist/stage-worker.js): its own TensorFlow.js engine and
// backend, its model part, and the instruction interpreter in `stage.ts`. The P stage workers of a pipeline are the P
// ranks of one `threads` transport world (rank = stage): activations and gradients go over its tagged send/recv.
// Control (step, update, eval, state) comes from the coordinator on the parent port. Any failure is reported to the
// coordinator as a one-line `failed` message; the thread then exits non-zero.
import { parentPort, workerData } from 'node:worker_threads';
import { PluginRegistry, registerModule, registerPluginModules } from '@yuan/core';
import * as model from '@yuan/model';
import * as tensor from '@yuan/tensor';
import { initBackend, type TensorAttentionPlugin } from '@yuan/tensor';
import { createProcessGroup, isThreadWorldMessage, threadsTransport } from '@yuan/comm';
import { StageLinks } from './links.js';
import { installedStageHooks } from './hooks.js';
import type { FromStage, StageInit, ToStage } from './protocol.js';
import { Stage } from './stage.js';

const init = workerData as StageInit;
const port = parentPort!;
const post = (m: FromStage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

/**
 * This stage's plugin registry (a plugin object cannot cross threads): the packages this worker is built on,
 * `@yuan/model` (attention `mha`) and `@yuan/tensor` (the built-in backends), then the coordinator's plugin modules.
 */
async function stageRegistry(): Promise<PluginRegistry> {
  const registry = registerModule(registerModule(new PluginRegistry(), model, '@yuan/model'), tensor, '@yuan/tensor');
  return (await registerPluginModules(registry, init.plugins)).freeze();
}

// Messages from the coordinator, consumed in order by the main loop below; a step's decision (update or discard) goes
// to the step that waits for it instead, which may be the one before the step the loop runs (post-validation overlap).
const inbox: ToStage[] = [];
let wake: (() => void) | undefined;
type Decision = Extract<ToStage, { type: 'update' | 'discard' }>;
const decisions: Decision[] = [];
let decided: ((d: Decision) => void) | undefined;
port.on('message', (m: ToStage) => {
  if (isThreadWorldMessage(m)) return; // the threads transport's own (a sibling stage is lost)
  if (m.type === 'update' || m.type === 'discard') {
    if (decided) {
      const resolve = decided;
      decided = undefined;
      resolve(m);
    } else decisions.push(m);
    return;
  }
  inbox.push(m);
  wake?.();
});
/** The next step decision from the coordinator (they come in step order, one per step). */
function nextDecision(): Promise<Decision> {
  if (decisions.length) return Promise.resolve(decisions.shift()!);
  return new Promise((resolve) => (decided = resolve));
}
async function nextMessage(): Promise<ToStage> {
  while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
  wake = undefined;
  return inbox.shift()!;
}

async function main(): Promise<void> {
  const registry = await stageRegistry();
  const backend = await initBackend(init.backend, registry);
  const attention = registry.get('attention', init.config.attention.name) as TensorAttentionPlugin<unknown>;
  const first = await nextMessage();
  if (first.type !== 'init') throw new Error(`expected init, got ${first.type}`);
  // the pipeline's threads world: one rank per stage
  const pipe = await createProcessGroup({ transport: threadsTransport, timeoutMs: init.timeoutMs });
  // test seam: the hooks the coordinator's test installed (only the test-only `testing` entry sets them)
  if (init.hooks)
    ((await import(init.hooks.module)) as { installStageHooks(options: unknown): void }).installStageHooks(
      init.hooks.options,
    );
  const stage = new Stage(
    init,
    attention,
    new StageLinks(pipe, init.stage, init.stages),
    first.weights && new Map(first.weights),
    undefined,
    installedStageHooks(),
  );
  if (first.moments) stage.restore(new Map(first.moments), first.optimizerStep ?? 0);
  post({ type: 'ready', parameters: stage.parameterCount, backend: backend.name });
  for (;;) {
    const m = await nextMessage();
    if (m.type === 'step') {
      await stage.trainStep(
        m.step,
        m.inputs,
        m.lr,
        (norm) => {
          post({ type: 'norm', step: m.step, ...norm });
          return nextDecision();
        },
        m.defer ?? false,
      );
      post({ type: 'stepDone', step: m.step, report: stage.lastReport });
    } else if (m.type === 'eval') {
      post({ type: 'evalDone', id: m.id, losses: await stage.evaluate(m.id, m.inputs) });
    } else if (m.type === 'state') {
      const s = await stage.state();
      post(
        { type: 'state', ...s },
        [...s.weights, ...s.moments].map(([, a]) => a.buffer as ArrayBuffer),
      );
    } else {
      throw new Error(`unexpected message ${m.type}`);
    }
  }
}

main().catch((e: unknown) => {
  const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
  post({ type: 'failed', message: msg });
  setTimeout(() => process.exit(1), 50);
});
