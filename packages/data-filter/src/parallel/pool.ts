import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { YuanError } from '@yuan/core';
import type { StageCounters } from '../pipeline.js';
import type { BatchResult, LineBatch, WorkerMessage, WorkInit } from './work.js';

/** The worker script: `worker.js` next to the built bundle (from sources, the package's `dist/worker.js`). */
function workerScript(): URL {
  for (const rel of ['./worker.js', '../worker.js', '../../dist/worker.js', '../dist/worker.js']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  throw new YuanError(
    'usage',
    'worker threads need the built @yuan/data-filter (dist/worker.js is missing: run `npx tsup` in packages/data-filter) or --workers 1',
  );
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>;
  counters?: (c: StageCounters[]) => void;
}

/**
 * N worker threads running the per-document stages. A batch goes to the least busy worker; a worker that fails or
 * exits fails every batch it holds (an error, never a hang).
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private failure?: Error;

  constructor(n: number, init: WorkInit) {
    const script = workerScript();
    for (let i = 0; i < n; i++) {
      const slot: Slot = { worker: new Worker(script, { workerData: init }), pending: new Map() };
      const fail = (e: Error) => {
        this.failure ??= e;
        for (const p of slot.pending.values()) p.reject(this.failure);
        slot.pending.clear();
      };
      slot.worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'result') {
          const p = slot.pending.get(m.result.seq);
          slot.pending.delete(m.result.seq);
          p?.resolve(m.result);
        } else if (m.type === 'counters') {
          slot.counters?.(m.counters);
        } else {
          fail(new YuanError(m.code === 'ENOENT' ? 'not-found' : 'input', `filter worker: ${m.message}`));
        }
      });
      slot.worker.on('error', (e) => fail(new YuanError('input', `filter worker failed: ${e.message}`)));
      slot.worker.on('exit', (code) => {
        if (slot.pending.size > 0 || (code !== 0 && !slot.counters))
          fail(new YuanError('input', `filter worker exited with code ${code} while it held work`));
      });
      this.slots.push(slot);
    }
  }

  /** Sends a batch (its data buffer is transferred) and resolves with its result. */
  submit(batch: LineBatch): Promise<BatchResult> {
    if (this.failure) return Promise.reject(this.failure);
    let best = this.slots[0];
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    const p = new Promise<BatchResult>((resolve, reject) => best.pending.set(batch.seq, { resolve, reject }));
    best.worker.postMessage({ type: 'batch', batch }, [batch.data.buffer as ArrayBuffer]);
    return p;
  }

  /** Asks every worker for its counters and lets it exit. */
  async finish(): Promise<StageCounters[][]> {
    return Promise.all(
      this.slots.map(
        (s) =>
          new Promise<StageCounters[]>((resolve, reject) => {
            if (this.failure) return reject(this.failure);
            s.counters = resolve;
            s.worker.once('exit', () =>
              reject(this.failure ?? new YuanError('input', 'filter worker exited before reporting')),
            );
            s.worker.postMessage({ type: 'finish' });
          }),
      ),
    );
  }

  /** Stops every worker. */
  async terminate(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
