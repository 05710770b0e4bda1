/** Worker-thread entry of `runFilter --workers N`: builds the pipeline and runs its per-document stages on line batches. */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchProcessor, type LineBatch, type WorkerMessage, type WorkInit } from './parallel/work.js';
import { FilterPipeline } from './pipeline.js';
import { buildFilterRegistry } from './plugins.js';

const init = workerData as WorkInit;
const port = parentPort!;
const post = (m: WorkerMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer as never);

async function main(): Promise<void> {
  const registry = await buildFilterRegistry([], init.config.plugins);
  const pipeline = new FilterPipeline(registry, init.config.filters, init.config.examples);
  const processor = new BatchProcessor(pipeline, init);
  port.on('message', (msg: { type: 'batch'; batch: LineBatch } | { type: 'finish' }) => {
    try {
      if (msg.type === 'batch') {
        const result = processor.process(msg.batch);
        post({ type: 'result', result }, [result.keys.buffer as ArrayBuffer]);
      } else {
        post({ type: 'counters', counters: pipeline.counters() });
        port.close();
      }
    } catch (e) {
      post({ type: 'error', message: (e as Error).message, code: (e as { code?: string }).code });
    }
  });
}

main().catch((e) => post({ type: 'error', message: (e as Error).message, code: (e as { code?: string }).code }));
