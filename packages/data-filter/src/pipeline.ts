import {
  ConfigError,
  deepMerge,
  type DocumentFilter,
  type FilterDecision,
  type FilterDocument,
  type PluginRegistry,
} from '@yuan/core';
import type { FilterStep } from './presets.js';
import { countReason, snippet, type FilterStats, type ReasonExample } from './report.js';

/** The outcome of running a document through the pipeline. */
export type PipelineResult = { keep: true } | { keep: false; filter: string; reason: string; detail?: string };

/**
 * A filter whose decision depends on documents seen before (dedup) but whose per-document work can be split off:
 * `keys` (pure, runs on any thread) and `applyKeys` (the stateful part, runs in input order on one thread).
 */
export interface KeyedFilter extends DocumentFilter {
  /** Number of 32-bit words `keys` returns. */
  readonly keyWidth: number;
  /** The document's keys (a pure function of its text). */
  keys(doc: FilterDocument): Uint32Array;
  /** The decision, from keys computed by `keys` (possibly on another thread). */
  applyKeys(keys: Uint32Array, offset: number): FilterDecision;
}

/** Whether a built filter splits its work into `keys` + `applyKeys`. */
export function isKeyed(f: DocumentFilter): f is KeyedFilter {
  return typeof (f as KeyedFilter).keys === 'function' && typeof (f as KeyedFilter).applyKeys === 'function';
}

/** A drop inside `applyRange`: the stage index, its decision, the UTF-8 bytes and the text the stage saw. */
export interface StageDrop {
  stage: number;
  filter: string;
  reason: string;
  detail?: string;
  bytes: number;
  textIn: string;
}

interface Stage {
  label: string;
  filter: DocumentFilter;
  stats: FilterStats;
}

/** Numeric per-stage counters (everything of FilterStats that adds up across threads). */
export type StageCounters = Pick<
  FilterStats,
  'seen' | 'kept' | 'dropped' | 'modified' | 'bytesIn' | 'bytesKept' | 'bytesDropped' | 'edits' | 'seconds'
>;

/** An ordered list of built filters with per-filter counters. */
export class FilterPipeline {
  private readonly stages: Stage[];

  /** Builds each step from the registry: options merged over the plugin's defaults, validated, then created. */
  constructor(
    registry: PluginRegistry,
    steps: FilterStep[],
    private readonly maxExamples = 3,
  ) {
    this.stages = steps.map((step, i) => {
      const plugin = registry.get('filter', step.name);
      const merged = deepMerge(plugin.defaults as Record<string, unknown>, step.options ?? {});
      let options: unknown;
      try {
        options = plugin.validate ? plugin.validate(merged) : merged;
      } catch (e) {
        if (e instanceof ConfigError)
          throw new ConfigError(
            `filters[${i}] (${step.label ?? step.name}): ${e.message.replace(/^invalid config: /, '')}`,
          );
        throw e;
      }
      const label = step.label ?? step.name;
      return {
        label,
        filter: plugin.create(options),
        stats: {
          label,
          plugin: step.name,
          options: options as Record<string, unknown>,
          seen: 0,
          kept: 0,
          dropped: 0,
          modified: 0,
          bytesIn: 0,
          bytesKept: 0,
          bytesDropped: 0,
          reasons: {},
          edits: {},
          seconds: 0,
        },
      };
    });
  }

  /** Number of stages. */
  get length(): number {
    return this.stages.length;
  }

  /** The built filter of stage `i`. */
  filter(i: number): DocumentFilter {
    return this.stages[i].filter;
  }

  /**
   * Index of the first stage that keeps state across documents (it has `stateInfo`, e.g. dedup), or `length`.
   * Stages before it are pure per document and may run on any thread; it and all after run in input order.
   */
  firstStateful(): number {
    const i = this.stages.findIndex((s) => typeof s.filter.stateInfo === 'function');
    return i < 0 ? this.stages.length : i;
  }

  /** Runs `doc` through the filters in order until one drops it; `source` is `FILE:LINE` for the report. */
  apply(doc: FilterDocument, source: string): PipelineResult {
    const drop = this.applyRange(doc, 0, this.stages.length);
    if (!drop) return { keep: true };
    this.countDrop(drop.stage, drop.reason, drop.bytes, () => ({
      id: doc.id,
      source,
      detail: drop.detail,
      snippet: snippet(drop.textIn),
    }));
    return { keep: false, filter: drop.filter, reason: drop.reason, detail: drop.detail };
  }

  /**
   * Runs stages [from, to) on `doc`, updating the numeric counters; a drop is returned, not counted under its
   * reason (the caller counts it with `countDrop`, in input order, so that report examples do not depend on threads).
   * `keys` (with `keyOffsets` per stage) carries precomputed keys of keyed stages.
   */
  applyRange(
    doc: FilterDocument,
    from: number,
    to: number,
    keys?: Uint32Array,
    keyOffsets?: number[],
    textBytes?: number,
  ): StageDrop | undefined {
    let bytesText = textBytes === undefined ? '' : doc.text;
    let bytes = textBytes ?? 0;
    // One clock reading per stage: a stage's time runs from the previous reading (its bookkeeping included).
    let clock = performance.now();
    for (let i = from; i < to; i++) {
      const stage = this.stages[i];
      if (doc.text !== bytesText || (bytes === 0 && textBytes === undefined)) {
        bytesText = doc.text;
        bytes = Buffer.byteLength(bytesText);
      }
      const s = stage.stats;
      s.seen++;
      s.bytesIn += bytes;
      const textIn = doc.text;
      const d =
        keys && keyOffsets && keyOffsets[i] >= 0
          ? (stage.filter as KeyedFilter).applyKeys(keys, keyOffsets[i])
          : stage.filter.apply(doc);
      const now = performance.now();
      s.seconds += (now - clock) / 1000;
      clock = now;
      if (!d.keep) {
        s.dropped++;
        s.bytesDropped += bytes;
        return { stage: i, filter: stage.label, reason: d.reason, detail: d.detail, bytes, textIn };
      }
      s.kept++;
      if (doc.text !== textIn) {
        s.modified++;
        bytesText = doc.text;
        bytes = Buffer.byteLength(bytesText);
      }
      s.bytesKept += bytes;
      if (d.edits) for (const [k, v] of Object.entries(d.edits)) s.edits[k] = (s.edits[k] ?? 0) + v;
    }
    return undefined;
  }

  /** Adds time spent for stage `stage` outside `applyRange` (its keys, computed on a worker thread). */
  addSeconds(stage: number, seconds: number): void {
    this.stages[stage].stats.seconds += seconds;
  }

  /** Counts a drop of stage `stage` under its reason (examples: the first `maxExamples` in call order). */
  countDrop(stage: number, reason: string, bytes: number, example: () => ReasonExample): void {
    countReason(this.stages[stage].stats.reasons, reason, bytes, this.maxExamples, example);
  }

  /** Numeric counters of every stage (to be merged into another pipeline with `addCounters`). */
  counters(): StageCounters[] {
    return this.stages.map(({ stats: s }) => ({
      seen: s.seen,
      kept: s.kept,
      dropped: s.dropped,
      modified: s.modified,
      bytesIn: s.bytesIn,
      bytesKept: s.bytesKept,
      bytesDropped: s.bytesDropped,
      edits: { ...s.edits },
      seconds: s.seconds,
    }));
  }

  /** Adds counters of the same pipeline built elsewhere (a worker thread). */
  addCounters(all: StageCounters[]): void {
    all.forEach((c, i) => {
      const s = this.stages[i].stats;
      s.seen += c.seen;
      s.kept += c.kept;
      s.dropped += c.dropped;
      s.modified += c.modified;
      s.bytesIn += c.bytesIn;
      s.bytesKept += c.bytesKept;
      s.bytesDropped += c.bytesDropped;
      s.seconds += c.seconds;
      for (const [k, v] of Object.entries(c.edits)) s.edits[k] = (s.edits[k] ?? 0) + v;
    });
  }

  /** Per-filter counters, with the current state sizes of stateful filters. */
  stats(): FilterStats[] {
    return this.stages.map((st) => {
      const state = st.filter.stateInfo?.();
      // Edits are listed in sorted key order so that the report does not depend on which thread saw an edit first.
      const edits = Object.fromEntries(Object.entries(st.stats.edits).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      return { ...st.stats, edits, seconds: Math.round(st.stats.seconds * 1000) / 1000, ...(state ? { state } : {}) };
    });
  }
}
