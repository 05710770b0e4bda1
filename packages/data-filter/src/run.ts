import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { applySet, deepMerge, YuanError, type FilterPlugin, type JsonObject, type PluginRegistry } from '@yuan/core';
import { readConfigFile, resolveFilterConfig, type FilterConfig } from './config.js';
import { readLines } from './io/lines.js';
import { parseRecord, withField } from './io/records.js';
import { AtomicWriter } from './io/writer.js';
import { FilterPipeline } from './pipeline.js';
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
  plugins?: readonly FilterPlugin<any>[];
  /** A registry to use (not yet frozen; the CLI's, with built-ins and `--plugin` modules); default: the built-in filters. */
  registry?: PluginRegistry;
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
  seconds: number;
  documentsPerSecond: number;
  done: boolean;
}

function addBadwords(config: FilterConfig, specs: string[]): void {
  const files: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new YuanError('usage', `--badwords "${spec}" must be LANG=FILE, e.g. zh=words-zh.txt (LANG * for all)`);
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

function resolveConfig(options: RunFilterOptions): FilterConfig {
  let layer: JsonObject = options.preset ? { preset: options.preset } : {};
  if (options.config) layer = deepMerge(layer, readConfigFile(options.config));
  if (options.configObject) layer = deepMerge(layer, options.configObject);
  for (const s of options.set ?? []) layer = applySet(layer, s);
  const config = resolveFilterConfig(layer);
  if (options.badwords?.length) addBadwords(config, options.badwords);
  return config;
}

function checkPaths(options: RunFilterOptions): void {
  if (options.inputs.length === 0) throw new YuanError('usage', 'no input files given');
  for (const f of options.inputs) {
    if (!existsSync(f)) throw new YuanError('not-found', `input file not found: ${f}`);
    if (!statSync(f).isFile()) throw new YuanError('usage', `input is not a file: ${f}`);
  }
  const outs = [options.output, options.rejects, options.report].filter((p): p is string => !!p).map((p) => path.resolve(p));
  if (new Set(outs).size !== outs.length) throw new YuanError('usage', 'output, rejects and report must be different files');
  for (const o of outs) if (options.inputs.some((i) => path.resolve(i) === o)) throw new YuanError('usage', `output file ${o} is also an input`);
}

const jsonInner = (s: string) => JSON.stringify(s).slice(1, -1);

/**
 * Streams the inputs through the configured pipeline: kept records (text replaced by the filtered text) go to the
 * output, malformed lines and dropped documents (with reasons) to the rejects; returns the report (also written to
 * `report`). Memory is bounded by `maxLineBytes` plus output buffers, except dedup state (per document).
 */
export async function runFilter(options: RunFilterOptions): Promise<FilterReport> {
  checkPaths(options);
  const shard = parseShard(options.shard);
  const config = resolveConfig(options);
  const registry = await buildFilterRegistry(options.plugins ?? [], config.plugins, options.registry);
  const pipeline = new FilterPipeline(registry, config.filters, config.examples);
  const bytesTotal = options.inputs.reduce((n, f) => n + statSync(f).size, 0);

  const output = new AtomicWriter(options.output);
  const rejects = options.rejects ? new AtomicWriter(options.rejects) : undefined;
  const inputReasons: Record<string, ReasonStats> = {};
  const c = { lines: 0, blank: 0, documents: 0, malformed: 0, bytes: 0, kept: 0, dropped: 0 };
  const started = performance.now();
  const interval = options.progressIntervalMs ?? 1000;
  let lastProgress = started;
  let bytesRead = 0;
  const progress = (done: boolean): void => {
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.({ lines: c.lines, documents: c.documents, kept: c.kept, dropped: c.dropped, malformed: c.malformed, bytesRead, bytesTotal, seconds, documentsPerSecond: seconds > 0 ? c.documents / seconds : 0, done });
  };
  const malformed = (reason: string, detail: string, file: string, lineNo: number, bytes: number, raw: string) => {
    c.malformed++;
    countReason(inputReasons, reason, bytes, config.examples, () => ({ id: `${path.basename(file)}:${lineNo}`, source: `${file}:${lineNo}`, detail, snippet: snippet(raw) }));
  };
  let long: { file: string; lineNo: number; head: string; decoder: StringDecoder } | undefined;

  try {
    await readLines(
      options.inputs,
      {
        line(bytes, file, lineNo) {
          c.lines++;
          c.bytes += bytes.length + 1;
          const r = parseRecord(bytes, file, lineNo, config);
          if (r === 'blank') {
            c.blank++;
            return;
          }
          if (!('text' in r)) {
            const raw = bytes.toString('utf8');
            malformed(r.reason, r.detail, file, lineNo, bytes.length, raw);
            const extra = r.reason === 'invalid-utf8' ? { rawBase64: bytes.toString('base64') } : {};
            rejects?.write(`${JSON.stringify({ reason: `input:${r.reason}`, detail: r.detail, file, line: lineNo, raw, ...extra })}\n`);
            return;
          }
          c.documents++;
          const res = pipeline.apply(r, `${file}:${lineNo}`);
          if (res.keep) {
            c.kept++;
            let out = withField(r.record, config.textField, r.text);
            if (config.annotate) out = { ...out, lang: r.lang ?? null, lang_score: r.langScore ?? null };
            output.write(`${JSON.stringify(out)}\n`);
          } else {
            c.dropped++;
            rejects?.write(`${JSON.stringify({ reason: `${res.filter}:${res.reason}`, detail: res.detail, file, line: lineNo, id: r.id, record: r.record })}\n`);
          }
        },
        longStart(head, file, lineNo) {
          c.lines++;
          const decoder = new StringDecoder('utf8');
          long = { file, lineNo, head: new StringDecoder('utf8').write(head.subarray(0, 1024)), decoder };
          rejects?.write(`{"reason":"input:line-too-long","detail":"longer than maxLineBytes (${config.maxLineBytes})","file":${JSON.stringify(file)},"line":${lineNo},"raw":"`);
          rejects?.write(jsonInner(decoder.write(head)));
        },
        longChunk(bytes) {
          rejects?.write(jsonInner(long!.decoder.write(bytes)));
        },
        longEnd(total) {
          c.bytes += total + 1;
          rejects?.write(`${jsonInner(long!.decoder.end())}","bytes":${total}}\n`);
          malformed('line-too-long', `${total} bytes > maxLineBytes ${config.maxLineBytes}`, long!.file, long!.lineNo, total, long!.head);
          long = undefined;
        },
        async pause(raw) {
          bytesRead = raw;
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
    await output.commit();
    await rejects?.commit();
  } catch (e) {
    await output.abort();
    await rejects?.abort();
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'Z_DATA_ERROR' || err?.code === 'Z_BUF_ERROR') throw new YuanError('input', `cannot decompress input: ${err.message}`);
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
    input: { lines: c.lines, blank: c.blank, documents: c.documents, malformed: c.malformed, bytes: c.bytes, reasons: inputReasons },
    result: { kept: c.kept, dropped: c.dropped, bytes: output.bytes },
    filters: pipeline.stats(),
    seconds: Math.round(seconds * 1000) / 1000,
    documentsPerSecond: Math.round(seconds > 0 ? c.documents / seconds : 0),
    megabytesPerSecond: Math.round((seconds > 0 ? c.bytes / 1e6 / seconds : 0) * 100) / 100,
  };
  if (options.report) {
    const tmp = path.join(path.dirname(path.resolve(options.report)), `.${path.basename(options.report)}.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
    renameSync(tmp, options.report);
  }
  return report;
}
