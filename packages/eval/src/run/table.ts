import type { EvalResult } from '@yuan/core';

function formatValue(name: string, value: number): string {
  if (/perplexity|loss|bits_per_byte/.test(name)) return value.toFixed(4);
  return `${(value * 100).toFixed(2)}%`;
}

/** The paper-comparison block of `details.paper` (YUAN protocol): ours beside the paper's 2B / 51B / 102B / 102B SC. */
function paperBlock(paper: Record<string, unknown>): string[] {
  const reported = (paper.reported ?? {}) as Record<string, number>;
  const ours = (paper.ours ?? {}) as Record<string, number>;
  const cols = Object.keys(reported);
  const oursText = Object.entries(ours)
    .map(([k, v]) => `${k} ${Number.isFinite(v) ? (v * 100).toFixed(1) : '-'}`)
    .join(', ');
  return [
    `protocol ${String(paper.protocol)}; the YUAN 2.0 paper's ${String(paper.metric)} in % (${String(paper.paper_data)}):`,
    `  ${''.padEnd(6)}${cols.map((c) => c.padStart(9)).join('')}`,
    `  ${'paper'.padEnd(6)}${cols.map((c) => reported[c]!.toFixed(1).padStart(9)).join('')}`,
    `  ours (this run): ${oursText}`,
    ...(paper.note ? [`  ${String(paper.note)}`] : []),
  ];
}

/** A plain-text table of an evaluation's metrics, one row per metric, with the task count, any details and the paper's numbers. */
export function formatResultTable(result: EvalResult): string {
  const rows = Object.entries(result.metrics).map(([k, v]) => [k, formatValue(k, v)] as const);
  const width = Math.max(6, ...rows.map(([k]) => k.length));
  const valueWidth = Math.max(5, ...rows.map(([, v]) => v.length));
  const line = `${'-'.repeat(width)}  ${'-'.repeat(valueWidth)}`;
  const body = rows.map(([k, v]) => `${k.padEnd(width)}  ${v.padStart(valueWidth)}`);
  const { paper, ...rest } = result.details ?? {};
  const details = Object.entries(rest).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const comparison = paper && typeof paper === 'object' ? paperBlock(paper as Record<string, unknown>) : [];
  return [
    `${result.task} (${result.count} tasks)`,
    `${'metric'.padEnd(width)}  ${'value'.padStart(valueWidth)}`,
    line,
    ...body,
    ...details,
    ...comparison,
  ].join('\n');
}
