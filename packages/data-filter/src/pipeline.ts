import { ConfigError, deepMerge, type DocumentFilter, type FilterDocument, type PluginRegistry } from '@yuan/core';
import type { FilterStep } from './presets.js';
import { countReason, snippet, type FilterStats } from './report.js';

/** The outcome of running a document through the pipeline. */
export type PipelineResult = { keep: true } | { keep: false; filter: string; reason: string; detail?: string };

interface Stage {
  label: string;
  filter: DocumentFilter;
  stats: FilterStats;
}

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
        if (e instanceof ConfigError) throw new ConfigError(`filters[${i}] (${step.label ?? step.name}): ${e.message.replace(/^invalid config: /, '')}`);
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

  /** Runs `doc` through the filters in order until one drops it; `source` is `FILE:LINE` for the report. */
  apply(doc: FilterDocument, source: string): PipelineResult {
    let bytesText = '';
    let bytes = 0;
    for (const stage of this.stages) {
      if (doc.text !== bytesText || bytes === 0) {
        bytesText = doc.text;
        bytes = Buffer.byteLength(bytesText);
      }
      const s = stage.stats;
      s.seen++;
      s.bytesIn += bytes;
      const textIn = doc.text;
      const t0 = performance.now();
      const d = stage.filter.apply(doc);
      s.seconds += (performance.now() - t0) / 1000;
      if (!d.keep) {
        s.dropped++;
        s.bytesDropped += bytes;
        countReason(s.reasons, d.reason, bytes, this.maxExamples, () => ({ id: doc.id, source, detail: d.detail, snippet: snippet(textIn) }));
        return { keep: false, filter: stage.label, reason: d.reason, detail: d.detail };
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
    return { keep: true };
  }

  /** Per-filter counters, with the current state sizes of stateful filters. */
  stats(): FilterStats[] {
    return this.stages.map((st) => {
      const state = st.filter.stateInfo?.();
      return { ...st.stats, seconds: Math.round(st.stats.seconds * 1000) / 1000, ...(state ? { state } : {}) };
    });
  }
}
