import type { PluginBase } from './registry.js';

/** One document flowing through a filter pipeline. Filters may replace `text` and set the language fields. */
export interface FilterDocument {
  /** The record's id field, or `FILE:LINE` when the record has none. */
  id: string;
  /** The text being filtered (already replaced by earlier filters that rewrite it). */
  text: string;
  /** Language label set by a language-identification filter (`zh`, `en`, `code`, `other`, ...). */
  lang?: string;
  /** Confidence of `lang` in [0, 1]. */
  langScore?: number;
  /** The parsed input record, untouched (its text field still holds the original text). */
  readonly record: Readonly<Record<string, unknown>>;
}

/** What a filter decided: keep (optionally with counted edits) or drop with a reason and a detail. */
export type FilterDecision =
  { keep: true; edits?: Record<string, number> } | { keep: false; reason: string; detail?: string };

/** A built filter instance: decides on one document at a time, in input order. */
export interface DocumentFilter {
  /** Keep or drop `doc`; may rewrite `doc.text` or set `doc.lang` before returning keep. */
  apply(doc: FilterDocument): FilterDecision;
  /** Size of state kept across documents (dedup indexes), for the run report. */
  stateInfo?(): Record<string, number>;
}

/** A data-filter kind (`normalize`, `langid`, `minhash`, ...): validates options and builds a filter. */
export interface FilterPlugin<Options = Record<string, unknown>> extends PluginBase<'filter', Options> {
  create(options: Options): DocumentFilter;
}

/** One entry of a filter pipeline: a filter plugin's name, its options, and an optional label (default: the name). */
export interface FilterStep {
  name: string;
  label?: string;
  options?: Record<string, unknown>;
}

/**
 * A named filter pipeline (kind `filter-preset`) that a run takes with no config (`yuan data filter --preset NAME`,
 * `preset:` in a filter config). A plugin package exports presets in its `plugins` like any other plugin; the steps
 * name filter plugins, which are looked up when the run builds its pipeline.
 */
export interface FilterPresetPlugin extends PluginBase<'filter-preset', Record<string, never>> {
  readonly filters: readonly FilterStep[];
}
