import type { EvalResult } from '@yuan/core';

function formatValue(name: string, value: number): string {
  if (/perplexity|loss|bits_per_byte/.test(name)) return value.toFixed(4);
  return `${(value * 100).toFixed(2)}%`;
}

/** A plain-text table of an evaluation's metrics, one row per metric, with the task count and any details. */
export function formatResultTable(result: EvalResult): string {
  const rows = Object.entries(result.metrics).map(([k, v]) => [k, formatValue(k, v)] as const);
  const width = Math.max(6, ...rows.map(([k]) => k.length));
  const valueWidth = Math.max(5, ...rows.map(([, v]) => v.length));
  const line = `${'-'.repeat(width)}  ${'-'.repeat(valueWidth)}`;
  const body = rows.map(([k, v]) => `${k.padEnd(width)}  ${v.padStart(valueWidth)}`);
  const details = Object.entries(result.details ?? {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [`${result.task} (${result.count} tasks)`, `${'metric'.padEnd(width)}  ${'value'.padStart(valueWidth)}`, line, ...body, ...details].join('\n');
}
