/** One example of a drop reason in the report. */
export interface ReasonExample {
  id: string;
  source: string;
  detail?: string;
  /** The first characters of the text as the filter saw it. */
  snippet: string;
}

/** Count, bytes (UTF-8 of the text as the filter saw it) and first examples of one drop reason. */
export interface ReasonStats {
  count: number;
  bytes: number;
  examples: ReasonExample[];
}

/** Counters of one filter of the pipeline. */
export interface FilterStats {
  label: string;
  plugin: string;
  options: Record<string, unknown>;
  seen: number;
  kept: number;
  dropped: number;
  /** Kept documents whose text the filter rewrote. */
  modified: number;
  bytesIn: number;
  bytesKept: number;
  bytesDropped: number;
  reasons: Record<string, ReasonStats>;
  /** Counted edits of kept documents (e.g. removed lines by reason). */
  edits: Record<string, number>;
  /** State kept across documents (dedup indexes): sizes and bytes. */
  state?: Record<string, number>;
  seconds: number;
}

/** The run report written by `--report`. */
export interface FilterReport {
  inputs: string[];
  output: string;
  rejects?: string;
  shard: { index: number; count: number };
  config: {
    textField: string;
    idField: string;
    maxLineBytes: number;
    annotate: boolean;
    filters: { label: string; plugin: string }[];
  };
  input: {
    /** Lines of this shard (blank ones included). */
    lines: number;
    blank: number;
    documents: number;
    malformed: number;
    bytes: number;
    reasons: Record<string, ReasonStats>;
  };
  result: { kept: number; bytes: number; dropped: number };
  filters: FilterStats[];
  /** Threads that ran the per-document filters (1: the main thread; N > 1: N worker threads). */
  threads: number;
  seconds: number;
  documentsPerSecond: number;
  megabytesPerSecond: number;
}

const SNIPPET = 160;

/** Records one drop in a reason table, keeping the first `maxExamples` examples. */
export function countReason(
  table: Record<string, ReasonStats>,
  reason: string,
  bytes: number,
  maxExamples: number,
  example: () => ReasonExample,
): void {
  let r = table[reason];
  if (!r) table[reason] = r = { count: 0, bytes: 0, examples: [] };
  r.count++;
  r.bytes += bytes;
  if (r.examples.length < maxExamples) r.examples.push(example());
}

/** The first characters of a text, on one line. */
export function snippet(text: string): string {
  const t = text
    .slice(0, SNIPPET * 2)
    .replace(/\s+/g, ' ')
    .trim();
  return t.length > SNIPPET ? `${t.slice(0, SNIPPET - 1)}…` : t;
}
