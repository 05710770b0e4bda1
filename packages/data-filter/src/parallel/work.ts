import type { FilterDocument } from '@yuan/core';
import type { FilterConfig } from '../config.js';
import { getField, parseRecord, withField } from '../io/records.js';
import { isKeyed, type FilterPipeline, type KeyedFilter, type StageCounters } from '../pipeline.js';
import { snippet } from '../report.js';
import { KeySet } from '../hash/keyset.js';

/** What a worker needs to build the same pipeline as the main thread. */
export interface WorkInit {
  config: FilterConfig;
  /** Input file names, indexed by `LineBatch.files`. */
  inputs: string[];
  /** Produce reject lines (only when the run writes rejects). */
  withRejects: boolean;
}

/** A batch of input lines: their bytes back to back (`ends[i]` is the end offset of line i), file index and line number. */
export interface LineBatch {
  seq: number;
  data: Uint8Array;
  ends: Int32Array;
  files: Int32Array;
  lineNos: Int32Array;
}

/** What became of one line in the per-document stages. */
export type LineResult =
  | { k: 0 }
  | { k: 1; reason: string; detail: string; bytes: number; raw: string; reject?: string }
  | {
      k: 2;
      stage: number;
      reason: string;
      bytes: number;
      /** Id, detail and snippet: only while the reason may still need a report example (see BatchProcessor). */
      id?: string;
      detail?: string;
      snippet?: string;
      reject?: string;
    }
  | {
      k: 3;
      id: string;
      /** The text (only when the tail is not keyed: keyed stages need just its byte count; a snippet comes from `out`). */
      text?: string;
      bytes: number;
      lang?: string;
      langScore?: number;
      /** The output line; absent when `doc` is given (in-process, for a keyed tail: made only if the tail keeps it). */
      out?: string;
      /** The document after the per-document stages (in-process only). */
      doc?: FilterDocument;
      recordJson?: string;
      partial?: true;
      /** A partial document's snippet, while it may be a report example of its dedup drop (it has no `out`). */
      snippet?: string;
    };

/** The per-document outcome of a batch, plus the keys of the survivors for the keyed (dedup) stages. */
export interface BatchResult {
  seq: number;
  lines: LineResult[];
  /** Keys of the surviving documents, `keyWidth` words each, in order (empty when the tail is not keyed). */
  keys: Uint32Array;
}

/** Messages from a worker thread. */
export type WorkerMessage =
  | { type: 'result'; result: BatchResult }
  | { type: 'counters'; counters: StageCounters[] }
  | { type: 'error'; message: string; code?: string };

const J = JSON.stringify;
/** Keys kept by a processor's cache of the first dedup stage before it starts over (≤ 16 B each for exact dedup). */
const SEEN_LIMIT = 1 << 20;

/** A rejected document, exactly as `JSON.stringify({reason, detail, file, line, id, record})` writes it. */
export function rejectLine(
  reason: string,
  detail: string | undefined,
  file: string,
  line: number,
  id: string,
  recordJson: string,
): string {
  return `{"reason":${J(reason)}${detail === undefined ? '' : `,"detail":${J(detail)}`},"file":${J(file)},"line":${line},"id":${J(id)},"record":${recordJson}}\n`;
}

/** The output line of a kept document: its record with the text field replaced (and `lang`, `lang_score` when annotating). */
export function keptLine(doc: FilterDocument, config: FilterConfig): string {
  let out = withField(doc.record as Record<string, unknown>, config.textField, doc.text);
  if (config.annotate) out = { ...out, lang: doc.lang ?? null, lang_score: doc.langScore ?? null };
  return `${J(out)}\n`;
}

/** How the stateful tail of a pipeline (from its first stateful stage on) is fed: by keys, or by whole documents. */
export interface TailPlan {
  head: number;
  /** Key offset of each stage within a document's keys, -1 for stages that are not keyed or not in the tail. */
  offsets: number[];
  keyWidth: number;
  /** Every tail stage is keyed: the worker computes the keys, the main thread only looks them up. */
  keyed: boolean;
}

/** Splits the pipeline into a per-document head and a stateful tail. */
export function planTail(p: FilterPipeline): TailPlan {
  const head = p.firstStateful();
  const offsets = new Array<number>(p.length).fill(-1);
  let keyed = true;
  let width = 0;
  for (let i = head; i < p.length; i++) {
    const f = p.filter(i);
    if (!isKeyed(f)) {
      keyed = false;
      continue;
    }
    offsets[i] = width;
    width += f.keyWidth;
  }
  if (!keyed) offsets.fill(-1);
  return { head, offsets, keyWidth: keyed ? width : 0, keyed };
}

/** The text of a kept document's output line (`keptLine`), for a report example of a later (dedup) drop. */
export function textOfKeptLine(out: string, config: FilterConfig): string {
  const text = getField(JSON.parse(out) as Record<string, unknown>, config.textField);
  return typeof text === 'string' ? text : '';
}

/** Runs the per-document stages of a pipeline over line batches (on a worker thread or in-process). */
export class BatchProcessor {
  readonly tail: TailPlan;
  /**
   * Keys of the first dedup stage seen by this processor (a bounded cache). A document whose keys are in it repeats
   * an earlier document exactly, so that stage will drop it: the later stages' keys (MinHash) are not computed.
   */
  private seen?: KeySet;
  /**
   * Drops seen per stage and reason. The report keeps the first `examples` drops of a reason in input order; batches
   * reach a processor in input order, so a drop that can be one of them is among this processor's first `examples` of
   * its reason: only those carry the id, detail and snippet an example needs.
   */
  private readonly drops = new Map<string, number>();
  /** Repeats (`partial` results) sent with a snippet so far. */
  private partialExamples = 0;
  /** Buffer of the keys of a batch, kept for the next batch. */
  private keyScratch = new Uint32Array(1 << 14);

  /** `inProcess`: results stay on this thread (kept documents are returned as objects, not yet as output lines). */
  constructor(
    readonly pipeline: FilterPipeline,
    private readonly init: WorkInit,
    private readonly inProcess = false,
  ) {
    this.tail = planTail(pipeline);
    if (this.tail.keyed && this.tail.head < pipeline.length)
      this.seen = new KeySet((pipeline.filter(this.tail.head) as KeyedFilter).keyWidth, 1 << 12);
  }

  /** Processes one batch. */
  process(batch: LineBatch): BatchResult {
    const { config, inputs, withRejects } = this.init;
    const buf = Buffer.from(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength);
    const lines: LineResult[] = [];
    // Keys of the surviving documents, back to back (grown as needed, copied out once).
    let keyBuf = this.keyScratch;
    let keyDocs = 0;
    let start = 0;
    for (let i = 0; i < batch.ends.length; i++) {
      const bytes = buf.subarray(start, batch.ends[i]);
      start = batch.ends[i];
      const file = inputs[batch.files[i]];
      const lineNo = batch.lineNos[i];
      const r = parseRecord(bytes, file, lineNo, config);
      if (r === 'blank') {
        lines.push({ k: 0 });
        continue;
      }
      if (!('text' in r)) {
        const raw = bytes.toString('utf8');
        let reject: string | undefined;
        if (withRejects) {
          const extra = r.reason === 'invalid-utf8' ? { rawBase64: bytes.toString('base64') } : {};
          reject = `${J({ reason: `input:${r.reason}`, detail: r.detail, file, line: lineNo, raw, ...extra })}\n`;
        }
        lines.push({
          k: 1,
          reason: r.reason,
          detail: r.detail,
          bytes: bytes.length,
          raw: raw.length > 2048 ? raw.slice(0, 2048) : raw,
          reject,
        });
        continue;
      }
      const drop = this.pipeline.applyRange(r, 0, this.tail.head);
      if (drop) {
        const detail = drop.detail;
        const res: LineResult = { k: 2, stage: drop.stage, reason: drop.reason, bytes: drop.bytes };
        const key = `${drop.stage}:${drop.reason}`;
        const seen = this.drops.get(key) ?? 0;
        if (seen < config.examples) {
          this.drops.set(key, seen + 1);
          res.id = r.id;
          if (detail !== undefined) res.detail = detail;
          res.snippet = snippet(drop.textIn);
        }
        if (withRejects)
          res.reject = rejectLine(`${drop.filter}:${drop.reason}`, detail, file, lineNo, r.id, J(r.record));
        lines.push(res);
        continue;
      }
      let partial = false;
      if (this.tail.keyed && this.tail.keyWidth > 0) {
        const width = this.tail.keyWidth;
        if (keyBuf.length < (keyDocs + 1) * width) {
          const grown = new Uint32Array(Math.max((keyDocs + 1) * width, 2 * keyBuf.length));
          grown.set(keyBuf.subarray(0, keyDocs * width));
          keyBuf = grown;
        }
        const at = keyDocs * width;
        keyBuf.fill(0, at, at + width);
        for (let s = this.tail.head; s < this.pipeline.length; s++) {
          const t0 = performance.now();
          keyBuf.set((this.pipeline.filter(s) as KeyedFilter).keys(r), at + this.tail.offsets[s]);
          this.pipeline.addSeconds(s, (performance.now() - t0) / 1000);
          if (s === this.tail.head && this.seen) {
            if (this.seen.size >= SEEN_LIMIT) this.seen = new KeySet(this.seen.width, 1 << 12);
            if (!this.seen.add(keyBuf, at)) {
              partial = true;
              break;
            }
          }
        }
        keyDocs++;
      }
      const res: Extract<LineResult, { k: 3 }> = { k: 3, id: r.id, bytes: Buffer.byteLength(r.text) };
      // Dedup drops many of these: in-process, the output line is made only for a document the tail keeps; a repeat
      // that this processor has seen (`partial`) is certain to be dropped and needs none.
      if (this.inProcess && this.tail.keyed) res.doc = r;
      else if (!partial) res.out = keptLine(r, config);
      else if (this.partialExamples < config.examples) {
        // This processor's repeats reach the tail in input order: a report example among them is one of its first.
        this.partialExamples++;
        res.snippet = snippet(r.text);
      }
      if (!this.tail.keyed) res.text = r.text;
      if (partial) res.partial = true;
      if (r.lang !== undefined) res.lang = r.lang;
      if (r.langScore !== undefined) res.langScore = r.langScore;
      if (withRejects || !this.tail.keyed) res.recordJson = J(r.record);
      lines.push(res);
    }
    this.keyScratch = keyBuf;
    return { seq: batch.seq, lines, keys: keyBuf.slice(0, keyDocs * this.tail.keyWidth) };
  }
}
