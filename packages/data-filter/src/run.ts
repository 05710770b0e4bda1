import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import {
  applySet,
  deepMerge,
  threadsForInput,
  writeFileAtomic,
  YuanError,
  type FilterDocument,
  type FilterPlugin,
  type JsonObject,
  type PluginRegistry,
} from '@yuan/core';
import { readConfigFile, resolveFilterConfig, type FilterConfig } from './config.js';
import { readLines } from './io/lines.js';
import { WorkerPool } from './parallel/pool.js';
import {
  BatchProcessor,
  keptLine,
  planTail,
  rejectLine,
  textOfKeptLine,
  type BatchResult,
  type LineBatch,
  type WorkInit,
} from './parallel/work.js';
import { AtomicWriter } from './io/writer.js';
import { FilterPipeline, type StageDrop } from './pipeline.js';
import { buildFilterRegistry } from './plugins.js';
import { countReason, snippet, type FilterReport, type ReasonStats } from './report.js';
import { parseShard, type Shard } from './shard.js';

/** What `runFilter` is asked to do. Precedence of settings: preset < config file < `config` object < `set` < fields here. */
export interface RunFilterOptions {
  /** JSONL files, optionally gzip-compressed, read in order. */
  inputs: string[];
  /** Output JSONL (gzip when it ends in `.gz`); written to a temporary name and renamed at the end. */
  output: string;
  /** Optional JSONL of rejected lines and documents, each with its reason. */
  rejects?: string;
  /** Optional JSON report path. */
  report?: string;
  /** Base preset. Default `yuan-zh-en` (used when no `filters` list is configured). */
  preset?: string;
  /** YAML or JSON config file. */
  config?: string;
  /** A config layer given in code (same fields as the file). */
  configObject?: JsonObject;
  /** `key.path=value` assignments applied to the config (e.g. `options.minhash.threshold=0.8`). */
  set?: string[];
  /** `I/N`: process only lines whose global index ≡ I (mod N). Dedup state is per shard. */
  shard?: string | Shard;
  /** `LANG=FILE` word lists for the `badwords` filter (added before dedup when the pipeline has none). */
  badwords?: string[];
  /** Extra filter plugins to register. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each filter has its own options type
  plugins?: readonly FilterPlugin<any>[];
  /**
   * Threads for the per-document stages: 1 runs everything on this thread; N > 1 runs them on N worker threads while
   * this thread only reads, orders, dedups and writes (each worker thread compiles the filters anew: about a second of
   * CPU on this machine's kind, paid back after a few tens of MB). Output is identical for any count. Default 1.
   */
  workers?: number;
  /** Extra plugin modules (package names or absolute paths; the CLI's `--plugin`), loaded after the config's `plugins:`. */
  pluginModules?: string[];
  /** Called about every `progressIntervalMs` (default 1000) and once at the end. */
  onProgress?: (progress: FilterProgress) => void;
  progressIntervalMs?: number;
}

/** Progress of a run. */
export interface FilterProgress {
  lines: number;
  documents: number;
  kept: number;
  dropped: number;
  malformed: number;
  /** Bytes read from disk so far and in all, for a completion fraction. */
  bytesRead: number;
  bytesTotal: number;
  /** Uncompressed input bytes (lines) read so far. */
  bytesIn: number;
  seconds: number;
  documentsPerSecond: number;
  /** Uncompressed input megabytes (10^6 bytes) per second. */
  megabytesPerSecond: number;
  /** Kept documents / documents so far. */
  keptFraction: number;
  done: boolean;
}

function addBadwords(config: FilterConfig, specs: string[]): void {
  const files: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1)
      throw new YuanError('usage', `--badwords "${spec}" must be LANG=FILE, e.g. zh=words-zh.txt (LANG * for all)`);
    files[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  const existing = config.filters.find((s) => s.name === 'badwords');
  if (existing) {
    existing.options = deepMerge(existing.options ?? {}, { files });
    return;
  }
  let at = config.filters.findIndex((s) => s.name === 'exact-dedup' || s.name === 'minhash');
  if (at < 0) at = config.filters.length;
  config.filters.splice(at, 0, { name: 'badwords', options: { files } });
}

/** The config layers of a run: preset < config file < config object < `set` (< `badwords`). */
export type ConfigLayers = Pick<RunFilterOptions, 'preset' | 'config' | 'configObject' | 'set' | 'badwords'>;

/**
 * Resolves the config layers of a run into one validated config. The preset is looked up in the run's registry: this
 * package's presets, `plugins` objects, and the presets of the config's `plugins:` modules and `pluginModules`.
 * Errors: ConfigError naming the bad field, NotFoundError for an unknown preset or a module that cannot be loaded.
 */
export async function resolveConfig(
  options: ConfigLayers & Pick<RunFilterOptions, 'plugins' | 'pluginModules'>,
): Promise<FilterConfig> {
  return (await resolveRun(options)).config;
}

/** The resolved config (the `pluginModules` joined to the config's `plugins:`) and the frozen registry of the run. */
async function resolveRun(
  options: ConfigLayers & Pick<RunFilterOptions, 'plugins' | 'pluginModules'>,
): Promise<{ config: FilterConfig; registry: PluginRegistry }> {
  let layer: JsonObject = options.preset ? { preset: options.preset } : {};
  if (options.config) layer = deepMerge(layer, readConfigFile(options.config));
  if (options.configObject) layer = deepMerge(layer, options.configObject);
  for (const s of options.set ?? []) layer = applySet(layer, s);
  // the modules load before the preset is resolved, so that a plugin package can bring presets; a malformed
  // `plugins:` field is reported by resolveFilterConfig's schema
  const listed = Array.isArray(layer.plugins) ? layer.plugins.filter((m): m is string => typeof m === 'string') : [];
  const modules = [...listed, ...(options.pluginModules ?? [])];
  const registry = await buildFilterRegistry(options.plugins ?? [], modules);
  const config = { ...resolveFilterConfig(layer, registry), plugins: modules };
  if (options.badwords?.length) addBadwords(config, options.badwords);
  return { config, registry };
}

function checkPaths(options: RunFilterOptions): void {
  if (options.inputs.length === 0) throw new YuanError('usage', 'no input files given');
  for (const f of options.inputs) {
    if (!existsSync(f)) throw new YuanError('not-found', `input file not found: ${f}`);
    if (!statSync(f).isFile()) throw new YuanError('usage', `input is not a file: ${f}`);
  }
  const named: [string, string | undefined][] = [
    ['output', options.output],
    ['rejects', options.rejects],
    ['report', options.report],
  ];
  const outs = named.filter((o): o is [string, string] => !!o[1]);
  if (new Set(outs.map(([, p]) => path.resolve(p))).size !== outs.length)
    throw new YuanError('usage', 'output, rejects and report must be different files');
  for (const [role, p] of outs)
    if (options.inputs.some((i) => path.resolve(i) === path.resolve(p)))
      throw new YuanError('usage', `${role} file ${path.resolve(p)} is also an input`);
}

/** The snippet a worker sent with a repeat for a report example (it sends one while a repeat may become one). */
function exampleSnippet(sent: string | undefined, file: string, lineNo: number): string {
  if (sent === undefined)
    throw new YuanError('internal', `${file}:${lineNo}: a report example came without its snippet`);
  return sent;
}

const jsonInner = (s: string) => JSON.stringify(s).slice(1, -1);

/** Default thread count of `runFilter` from code: 1 (the CLI defaults to `workersForInput`). */
export const DEFAULT_WORKERS = 1;

/**
 * Input bytes per filter thread below which one more thread costs more than it saves: each worker thread spends about
 * a second of CPU compiling the filters and filling its word table, the time one core takes to filter about 15 MB
 * (bench/filter.mjs on a 2-core machine: at 10 MB two worker threads take 1.2x the time of one thread, at 40 MB 0.85x).
 */
const BYTES_PER_THREAD = 16e6;
/** Gzip-compressed input counts as this many times its size (JSONL text compresses about 3-5x). */
const GZIP_EXPANSION = 4;

/**
 * The thread count for filtering `inputs` (`--shard I/N`: 1/N of their lines) when none is asked for: `cores`, but
 * no more than one thread per 16 MB of input (BYTES_PER_THREAD), and 1 (the main thread only) below 32 MB. Inputs
 * that cannot be read count as empty (`runFilter` reports them).
 */
export function workersForInput(inputs: readonly string[], cores: number, shard?: string | Shard): number {
  // A shard 1/N filters 1/N of the lines: one thread per N × 16 MB of files.
  return threadsForInput(inputs, cores, parseShard(shard).count * BYTES_PER_THREAD, (f) =>
    f.endsWith('.gz') ? GZIP_EXPANSION : 1,
  );
}

/** A batch of lines ends after this many bytes or lines (small enough that threads share the work evenly). */
const BATCH_BYTES = 1 << 18;
const BATCH_LINES = 1000;

/**
 * Streams the inputs through the configured pipeline: kept records (text replaced by the filtered text) go to the
 * output, malformed lines and dropped documents (with reasons) to the rejects; returns the report (also written to
 * `report`). With `workers` > 1 the per-document stages run over batches of lines on `workers` worker threads, and
 * the stateful stages (dedup) in input order on this thread: output, rejects and report counts are byte-identical to
 * one thread. Memory is bounded by `maxLineBytes` plus output buffers plus ≤ 2 batches (256 KiB each) per thread,
 * except dedup state.
 */
export async function runFilter(options: RunFilterOptions): Promise<FilterReport> {
  checkPaths(options);
  const shard = parseShard(options.shard);
  // `--plugin` modules join the config's, so worker threads load them too
  const { config, registry } = await resolveRun(options);
  const workers = options.workers ?? DEFAULT_WORKERS;
  if (!Number.isInteger(workers) || workers < 1)
    throw new YuanError('usage', `--workers ${workers} must be a whole number >= 1`);
  if (workers > 1 && options.plugins?.length) {
    throw new YuanError(
      'usage',
      'filter plugins given as objects cannot run on worker threads: list their modules under `plugins:` in the config, or use workers: 1',
    );
  }
  const pipeline = new FilterPipeline(registry, config.filters, config.examples);
  const bytesTotal = options.inputs.reduce((n, f) => n + statSync(f).size, 0);
  const init: WorkInit = { config, inputs: options.inputs, withRejects: !!options.rejects };
  const tail = planTail(pipeline);

  const output = new AtomicWriter(options.output);
  const rejects = options.rejects ? new AtomicWriter(options.rejects) : undefined;
  const pool = workers > 1 ? new WorkerPool(workers, init) : undefined;
  // One thread: this thread filters every batch itself.
  const local = pool ? undefined : new BatchProcessor(pipeline, init, true);
  const inputReasons: Record<string, ReasonStats> = {};
  const c = { lines: 0, blank: 0, documents: 0, malformed: 0, bytes: 0, kept: 0, dropped: 0 };
  const started = performance.now();
  const interval = options.progressIntervalMs ?? 1000;
  let lastProgress = started;
  let bytesRead = 0;
  const progress = (done: boolean): void => {
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.({
      lines: c.lines,
      documents: c.documents,
      kept: c.kept,
      dropped: c.dropped,
      malformed: c.malformed,
      bytesRead,
      bytesTotal,
      bytesIn: c.bytes,
      seconds,
      documentsPerSecond: seconds > 0 ? c.documents / seconds : 0,
      megabytesPerSecond: seconds > 0 ? c.bytes / 1e6 / seconds : 0,
      keptFraction: c.documents > 0 ? c.kept / c.documents : 0,
      done,
    });
  };
  const malformed = (reason: string, detail: string, file: string, lineNo: number, bytes: number, raw: string) => {
    c.malformed++;
    countReason(inputReasons, reason, bytes, config.examples, () => ({
      id: `${path.basename(file)}:${lineNo}`,
      source: `${file}:${lineNo}`,
      detail,
      snippet: snippet(raw),
    }));
  };

  // Batches of lines in flight, handled strictly in the order they were read.
  type Pending = { batch: { files: Int32Array; lineNos: Int32Array }; result: Promise<BatchResult> };
  const queue: Pending[] = [];
  const limit = 2 * workers;
  let seq = 0;
  let parts: Buffer[] = [];
  let partBytes = 0;
  let files: number[] = [];
  let lineNos: number[] = [];
  const fileIndex = new Map(options.inputs.map((f, i) => [f, i]));

  const seal = (): void => {
    if (parts.length === 0) return;
    const data = new Uint8Array(new ArrayBuffer(partBytes));
    const ends = new Int32Array(parts.length);
    let at = 0;
    parts.forEach((p, i) => {
      data.set(p, at);
      at += p.length;
      ends[i] = at;
    });
    const batch: LineBatch = {
      seq: seq++,
      data,
      ends,
      files: Int32Array.from(files),
      lineNos: Int32Array.from(lineNos),
    };
    parts = [];
    partBytes = 0;
    files = [];
    lineNos = [];
    const meta = { files: batch.files, lineNos: batch.lineNos };
    const result = pool ? pool.submit(batch) : Promise.resolve(local!.process(batch));
    result.catch(() => undefined);
    queue.push({ batch: meta, result });
  };

  const handle = (meta: Pending['batch'], r: BatchResult): void => {
    let keyAt = 0;
    r.lines.forEach((l, i) => {
      if (l.k === 0) {
        c.blank++;
        return;
      }
      const file = options.inputs[meta.files[i]];
      const lineNo = meta.lineNos[i];
      if (l.k === 1) {
        malformed(l.reason, l.detail, file, lineNo, l.bytes, l.raw);
        if (l.reject) rejects?.write(l.reject);
        return;
      }
      c.documents++;
      if (l.k === 2) {
        c.dropped++;
        pipeline.countDrop(l.stage, l.reason, l.bytes, () => {
          return {
            id: l.id!,
            source: `${file}:${lineNo}`,
            detail: l.detail,
            snippet: exampleSnippet(l.snippet, file, lineNo),
          };
        });
        if (l.reject) rejects?.write(l.reject);
        return;
      }
      let out = l.out;
      const doc: FilterDocument = {
        id: l.id,
        text: l.text ?? '',
        lang: l.lang,
        langScore: l.langScore,
        record: tail.keyed ? {} : JSON.parse(l.recordJson!),
      };
      if (l.lang === undefined) delete doc.lang;
      if (l.langScore === undefined) delete doc.langScore;
      let drop: StageDrop | undefined;
      if (tail.head < pipeline.length) {
        if (tail.keyed) {
          drop = pipeline.applyRange(
            doc,
            tail.head,
            pipeline.length,
            r.keys.subarray(keyAt, keyAt + tail.keyWidth),
            tail.offsets,
            l.bytes,
          );
          keyAt += tail.keyWidth;
          // A document whose later keys were skipped repeats an earlier one: the first dedup stage must have dropped it.
          if (l.partial && drop?.stage !== tail.head)
            throw new YuanError(
              'internal',
              `${file}:${lineNo}: a repeated document was not dropped by its first dedup stage`,
            );
        } else {
          drop = pipeline.applyRange(doc, tail.head, pipeline.length);
          if (!drop && doc.text !== l.text) out = keptLine(doc, config);
        }
      }
      if (!drop) {
        c.kept++;
        output.write(out ?? keptLine(l.doc!, config));
        return;
      }
      c.dropped++;
      const d = drop;
      pipeline.countDrop(d.stage, d.reason, d.bytes, () => ({
        id: l.id,
        source: `${file}:${lineNo}`,
        detail: d.detail,
        snippet: !tail.keyed
          ? snippet(d.textIn)
          : l.doc
            ? snippet(l.doc.text)
            : l.out
              ? snippet(textOfKeptLine(l.out, config))
              : exampleSnippet(l.snippet, file, lineNo),
      }));
      if (rejects) rejects.write(rejectLine(`${d.filter}:${d.reason}`, d.detail, file, lineNo, l.id, l.recordJson!));
    });
  };

  /** Handles finished batches in order until at most `keep` remain in flight. */
  const settle = async (keep: number): Promise<void> => {
    while (queue.length > keep) {
      const next = queue[0];
      const r = await next.result;
      queue.shift();
      handle(next.batch, r);
      await output.drain();
      await rejects?.drain();
    }
  };

  let long: { file: string; lineNo: number; head: string; decoder: StringDecoder } | undefined;

  try {
    await readLines(
      options.inputs,
      {
        line(bytes, file, lineNo) {
          c.lines++;
          c.bytes += bytes.length + 1;
          parts.push(bytes);
          partBytes += bytes.length;
          files.push(fileIndex.get(file)!);
          lineNos.push(lineNo);
          if (partBytes >= BATCH_BYTES || parts.length >= BATCH_LINES) seal();
        },
        async longStart(head, file, lineNo) {
          c.lines++;
          seal();
          await settle(0);
          const decoder = new StringDecoder('utf8');
          long = { file, lineNo, head: new StringDecoder('utf8').write(head.subarray(0, 1024)), decoder };
          rejects?.write(
            `{"reason":"input:line-too-long","detail":"longer than maxLineBytes (${config.maxLineBytes})","file":${JSON.stringify(file)},"line":${lineNo},"raw":"`,
          );
          rejects?.write(jsonInner(decoder.write(head)));
        },
        longChunk(bytes) {
          rejects?.write(jsonInner(long!.decoder.write(bytes)));
        },
        longEnd(total) {
          c.bytes += total + 1;
          rejects?.write(`${jsonInner(long!.decoder.end())}","bytes":${total}}\n`);
          malformed(
            'line-too-long',
            `${total} bytes > maxLineBytes ${config.maxLineBytes}`,
            long!.file,
            long!.lineNo,
            total,
            long!.head,
          );
          long = undefined;
        },
        async pause(raw) {
          bytesRead = raw;
          await settle(limit);
          await output.drain();
          await rejects?.drain();
          const now = performance.now();
          if (options.onProgress && now - lastProgress >= interval) {
            lastProgress = now;
            progress(false);
          }
        },
      },
      { maxLineBytes: config.maxLineBytes, shard },
    );
    seal();
    await settle(0);
    if (pool) for (const w of await pool.finish()) pipeline.addCounters(w);
    await output.commit();
    await rejects?.commit();
  } catch (e) {
    await pool?.terminate();
    await output.abort();
    await rejects?.abort();
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'Z_DATA_ERROR' || err?.code === 'Z_BUF_ERROR')
      throw new YuanError('input', `cannot decompress input: ${err.message}`);
    throw e;
  }
  bytesRead = bytesTotal;
  progress(true);
  const seconds = (performance.now() - started) / 1000;
  const report: FilterReport = {
    inputs: options.inputs,
    output: options.output,
    ...(options.rejects ? { rejects: options.rejects } : {}),
    shard,
    config: {
      textField: config.textField,
      idField: config.idField,
      maxLineBytes: config.maxLineBytes,
      annotate: config.annotate,
      filters: config.filters.map((s) => ({ label: s.label ?? s.name, plugin: s.name })),
    },
    input: {
      lines: c.lines,
      blank: c.blank,
      documents: c.documents,
      malformed: c.malformed,
      bytes: c.bytes,
      reasons: inputReasons,
    },
    result: { kept: c.kept, dropped: c.dropped, bytes: output.bytes },
    filters: pipeline.stats(),
    threads: workers,
    seconds: Math.round(seconds * 1000) / 1000,
    documentsPerSecond: Math.round(seconds > 0 ? c.documents / seconds : 0),
    megabytesPerSecond: Math.round((seconds > 0 ? c.bytes / 1e6 / seconds : 0) * 100) / 100,
  };
  if (options.report) {
    await writeFileAtomic(options.report, `${JSON.stringify(report, null, 2)}\n`);
  }
  return report;
}
