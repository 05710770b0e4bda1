/**
 * Worker-thread entry of `prepareData --workers N`: builds its own plugin registry from the plugin modules it is given
 * (a plugin object cannot cross threads), opens the tokenizer by name from it and tokenizes sample batches.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openTokenizer, PluginRegistry, registerPluginModules } from '@yuan/core';
import { encodeSamples, type Sample } from './prepare-items.js';
import type { TokenizerWorkerData } from './prepare.js';

const spec = workerData as TokenizerWorkerData;
const port = parentPort!;

async function main(): Promise<void> {
  const registry = await registerPluginModules(new PluginRegistry(), spec.modules);
  const tok = await openTokenizer(registry.freeze(), spec.tokenizer);
  port.on('message', (m: { seq: number; samples: Sample[] } | 'finish') => {
    if (m === 'finish') {
      port.close();
      return;
    }
    try {
      const r = encodeSamples(tok, m.seq, m.samples);
      port.postMessage({ type: 'result', result: r }, [
        r.ids.buffer as ArrayBuffer,
        r.ends.buffer as ArrayBuffer,
        r.splits.buffer as ArrayBuffer,
        r.skips.buffer as ArrayBuffer,
      ]);
    } catch (e) {
      port.postMessage({ type: 'error', message: (e as Error).message });
    }
  });
}

main().catch((e) => port.postMessage({ type: 'error', message: (e as Error).message }));
