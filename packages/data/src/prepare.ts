import { createReadStream, existsSync, statSync, type ReadStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import {
  PluginRegistry,
  registerPluginModules,
  resolvePluginModule,
  threadsForInput,
  YuanError,
  type Tokenizer,
} from '@yuan/core';
import { PackWriter, type PackedIndex } from './pack.js';
import { encodeSamples, yuanLine, type EncodedBatch, type Sample } from './prepare-items.js';

/** How an input file is read: `text` (blank-line-separated blocks), `jsonl` (text field or prompt/answer), `yuan` (one sample a line). */
export type SampleFormat = 'text' | 'jsonl' | 'yuan';

/** Progress of `prepareData`. */
export interface PrepareProgress {
  samples: number;
  tokens: number;
  /** Input bytes read so far and in all. */
  bytesRead: number;
  bytesTotal: number;
  seconds: number;
  samplesPerSecond: number;
  tokensPerSecond: number;
  megabytesPerSecond: number;
  done: boolean;
}

/** What `prepareData` is asked to do. */
export interface PrepareOptions {
  inputs: string[];
  /** The packed data folder to write (with Megatron `.bin/.idx` files inside unless `megatron` is false). */
  output: string;
  /** `auto` (default): `.jsonl` files are JSONL, everything else text. */
  format?: 'auto' | SampleFormat;
  /** JSONL field of a document's text. Default `text`. */
  textField?: string;
  /** The tokenizer (used on this thread). */
  tokenizer: Tokenizer;
  /** The same tokenizer as a registered plugin name and its file (recorded in the folder's index; what worker threads open). */
  tokenizerSpec: { name: string; path?: string };
  /**
   * Plugin modules (package names resolved from the working directory, paths or `file:` URLs) whose `plugins` a worker
   * thread registers to look `tokenizerSpec.name` up in its own registry. Default: `@yuan/tokenizer` (`bytes`,
   * `sentencepiece`).
   */
  plugins?: readonly string[];
  validFraction: number;
  /** Worker threads for tokenization (1: this thread). Output is byte-identical for any count. Default 1. */
  workers?: number;
  megatron?: boolean;
  onProgress?: (p: PrepareProgress) => void;
  progressIntervalMs?: number;
}

/** What `prepareData` did. */
export interface PrepareResult {
  index: PackedIndex;
  samples: number;
  tokens: number;
  seconds: number;
}

/**
 * Input bytes per tokenizer thread below which one more thread costs more than it saves: a worker thread loads the
 * model (0.2–0.3 s for YUAN's 135k pieces) and compiles the tokenizer, what one thread needs for a few MB
 * (bench/prepare.mjs on a 2-core machine: two workers take twice as long as one on 2 MB, 0.92x on 22 MB).
 */
const BYTES_PER_THREAD = 8e6;

/**
 * The worker-thread count for tokenizing `inputs` when none is asked for: `cores`, but at most one thread per 8 MB of
 * input (BYTES_PER_THREAD), and 1 (this thread only) below 16 MB. Inputs that cannot be read count as empty.
 */
export function prepareWorkersForInput(inputs: readonly string[], cores: number): number {
  return threadsForInput(inputs, cores, BYTES_PER_THREAD);
}

const BATCH_SAMPLES = 512;
const BATCH_CHARS = 1 << 20;

function workerScript(): URL {
  for (const rel of ['./prepare-worker.js', '../prepare-worker.js', '../dist/prepare-worker.js']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  throw new YuanError(
    'usage',
    'tokenizing on worker threads needs the built @yuan/data (dist/prepare-worker.js is missing) or --workers 1',
  );
}

/** What a tokenizing worker thread gets: the plugin module files to register and the tokenizer to open from them. */
export interface TokenizerWorkerData {
  modules: string[];
  tokenizer: { name: string; path?: string };
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * The worker threads' registry inputs: `o.plugins` (default `@yuan/tokenizer`, resolved from this package) as files.
 * The same registry is built here first, so a name the modules do not provide fails before any worker starts.
 */
async function tokenizerWorkerData(o: PrepareOptions): Promise<TokenizerWorkerData> {
  const modules = o.plugins
    ? o.plugins.map((spec) => resolvePluginModule(spec, process.cwd()))
    : [resolvePluginModule('@yuan/tokenizer', HERE)];
  const registry = await registerPluginModules(new PluginRegistry(), modules);
  if (!registry.has('tokenizer', o.tokenizerSpec.name)) {
    throw new YuanError(
      'usage',
      `tokenizer "${o.tokenizerSpec.name}" is not a plugin of the worker threads' modules (${registry.names('tokenizer').join(', ') || 'none'}): give its module in plugins, or use --workers 1`,
    );
  }
  return { modules, tokenizer: { ...o.tokenizerSpec } };
}

/** Worker threads tokenizing batches; a failing or exiting worker fails its batches (an error, never a hang). */
class TokenizePool {
  private readonly workers: {
    w: Worker;
    pending: Map<number, { resolve: (r: EncodedBatch) => void; reject: (e: Error) => void }>;
  }[] = [];
  private failure?: Error;

  constructor(n: number, spec: TokenizerWorkerData) {
    const script = workerScript();
    for (let i = 0; i < n; i++) {
      const slot = { w: new Worker(script, { workerData: spec }), pending: new Map() };
      const fail = (e: Error) => {
        this.failure ??= e;
        for (const p of slot.pending.values()) p.reject(this.failure);
        slot.pending.clear();
      };
      slot.w.on('message', (m: { type: 'result'; result: EncodedBatch } | { type: 'error'; message: string }) => {
        if (m.type === 'error') return fail(new YuanError('tokenizer', `tokenizer worker: ${m.message}`));
        const p = slot.pending.get(m.result.seq);
        slot.pending.delete(m.result.seq);
        p?.resolve(m.result);
      });
      slot.w.on('error', (e) => fail(new YuanError('tokenizer', `tokenizer worker failed: ${e.message}`)));
      slot.w.on('exit', (code) => {
        if (slot.pending.size > 0)
          fail(new YuanError('tokenizer', `tokenizer worker exited with code ${code} while it held work`));
      });
      this.workers.push(slot);
    }
  }

  submit(seq: number, samples: Sample[]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    let best = this.workers[0];
    for (const s of this.workers) if (s.pending.size < best.pending.size) best = s;
    const p = new Promise<EncodedBatch>((resolve, reject) => best.pending.set(seq, { resolve, reject }));
    best.w.postMessage({ seq, samples });
    return p;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
  }
}

function formatOf(file: string, format: PrepareOptions['format']): SampleFormat {
  if (format && format !== 'auto') return format;
  return /\.jsonl$/i.test(file) ? 'jsonl' : 'text';
}

async function* linesOf(file: string, onStream: (s: ReadStream) => void): AsyncGenerator<string> {
  const stream = createReadStream(file, 'utf8');
  onStream(stream);
  yield* createInterface({ input: stream, crlfDelay: Infinity });
}

/** The samples of a file, in order. Malformed JSONL is an error naming the file and line. */
async function* samplesOf(
  file: string,
  format: SampleFormat,
  field: string,
  onStream: (s: ReadStream) => void,
): AsyncGenerator<Sample> {
  if (format === 'text') {
    let block: string[] = [];
    for await (const line of linesOf(file, onStream)) {
      if (line.trim() === '') {
        if (block.some((l) => l.trim() !== '')) yield { k: 'doc', text: block.join('\n') };
        block = [];
      } else block.push(line);
    }
    if (block.some((l) => l.trim() !== '')) yield { k: 'doc', text: block.join('\n') };
    return;
  }
  let n = 0;
  for await (const line of linesOf(file, onStream)) {
    n++;
    if (format === 'yuan') {
      const text = yuanLine(line);
      if (text !== undefined) yield { k: 'line', text };
      continue;
    }
    if (line.trim() === '') continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new YuanError('input', `${file}:${n}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof rec?.[field] === 'string') yield { k: 'doc', text: rec[field] as string };
    else if (typeof rec?.prompt === 'string' && typeof rec?.answer === 'string')
      yield { k: 'pair', prompt: rec.prompt, answer: rec.answer };
    else
      throw new YuanError(
        'input',
        `${file}:${n}: expected a string field "${field}" or string fields "prompt" and "answer"`,
      );
  }
}

/**
 * Tokenizes text, JSONL or YUAN-format files into a packed data folder (train/valid split, SFT prompts masked) that
 * also holds the same tokens as Megatron indexed datasets. With `workers` > 1 tokenization runs on worker threads;
 * batches are written in input order, so the output is byte-identical to one thread. Memory: ≤ 2 batches
 * (512 samples / 1 M characters) per worker in flight. The folder appears only when complete.
 */
export async function prepareData(o: PrepareOptions): Promise<PrepareResult> {
  const workers = o.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1)
    throw new YuanError('usage', `--workers ${workers} must be a whole number >= 1`);
  const workerData = workers > 1 ? await tokenizerWorkerData(o) : undefined;
  const tok = o.tokenizer;
  const writer = await PackWriter.create(o.output, {
    tokenizer: o.tokenizerSpec,
    vocabSize: tok.vocabSize,
    special: tok.special,
    validFraction: o.validFraction,
    megatron: o.megatron,
  });
  const pool = workerData ? new TokenizePool(workers, workerData) : undefined;
  const bytesTotal = o.inputs.reduce((n, f) => n + statSync(f).size, 0);
  const started = performance.now();
  let last = started;
  const c = { samples: 0, tokens: 0, bytesDone: 0 };
  let stream: ReadStream | undefined;
  const progress = (done: boolean) => {
    const seconds = (performance.now() - started) / 1000;
    const bytesRead = done ? bytesTotal : c.bytesDone + (stream?.bytesRead ?? 0);
    o.onProgress?.({
      samples: c.samples,
      tokens: c.tokens,
      bytesRead,
      bytesTotal,
      seconds,
      samplesPerSecond: c.samples / seconds,
      tokensPerSecond: c.tokens / seconds,
      megabytesPerSecond: bytesRead / 1e6 / seconds,
      done,
    });
  };
  const queue: Promise<EncodedBatch>[] = [];
  let seq = 0;
  let batch: Sample[] = [];
  let chars = 0;
  const seal = () => {
    if (batch.length === 0) return;
    const p = pool ? pool.submit(seq++, batch) : Promise.resolve(encodeSamples(tok, seq++, batch));
    p.catch(() => undefined);
    queue.push(p);
    batch = [];
    chars = 0;
  };
  const write = async (r: EncodedBatch) => {
    let start = 0;
    for (let i = 0; i < r.ends.length; i++) {
      const end = r.ends[i];
      const split = r.splits[i];
      if (split < 0) await writer.addDocument(r.ids.subarray(start, end));
      else await writer.addPair(r.ids.subarray(start, start + split), r.ids.subarray(start + split + r.skips[i], end));
      c.samples++;
      start = end;
    }
    c.tokens += r.ids.length;
  };
  const settle = async (keep: number) => {
    while (queue.length > keep) {
      const r = await queue[0];
      void queue.shift(); // the batch just awaited
      await write(r);
    }
    const now = performance.now();
    if (o.onProgress && now - last >= (o.progressIntervalMs ?? 1000)) {
      last = now;
      progress(false);
    }
  };
  try {
    for (const f of o.inputs) {
      for await (const s of samplesOf(f, formatOf(f, o.format), o.textField ?? 'text', (st) => (stream = st))) {
        batch.push(s);
        chars += s.k === 'pair' ? s.prompt.length + s.answer.length : s.text.length;
        if (batch.length >= BATCH_SAMPLES || chars >= BATCH_CHARS) {
          seal();
          await settle(2 * workers);
        }
      }
      c.bytesDone += statSync(f).size;
      stream = undefined;
    }
    seal();
    await settle(0);
    await pool?.close();
  } catch (e) {
    await pool?.close();
    await writer.abort();
    throw e;
  }
  const index = await writer.finish();
  progress(true);
  return { index, samples: c.samples, tokens: c.tokens, seconds: (performance.now() - started) / 1000 };
}
