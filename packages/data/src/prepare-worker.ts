/** Worker-thread entry of `prepareData --workers N`: loads the tokenizer and tokenizes sample batches. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Tokenizer } from '@yuan/core';
import { ByteTokenizer, loadSentencePiece } from '@yuan/tokenizer';
import { encodeSamples, type Sample } from './prepare-items.js';

const spec = workerData as { name: string; path?: string };
const port = parentPort!;

async function main(): Promise<void> {
  const tok: Tokenizer = spec.name === 'bytes' ? new ByteTokenizer() : await loadSentencePiece(spec.path!);
  port.on('message', (m: { seq: number; samples: Sample[] } | 'finish') => {
    if (m === 'finish') {
      port.close();
      return;
    }
    try {
      const r = encodeSamples(tok, m.seq, m.samples);
      port.postMessage({ type: 'result', result: r }, [r.ids.buffer as ArrayBuffer, r.ends.buffer as ArrayBuffer, r.splits.buffer as ArrayBuffer, r.skips.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({ type: 'error', message: (e as Error).message });
    }
  });
}

main().catch((e) => port.postMessage({ type: 'error', message: (e as Error).message }));
