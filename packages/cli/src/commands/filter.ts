import { YuanError } from '@yuan/core';
import { runFilter, type FilterProgress, type FilterReport } from '@yuan/data-filter';
import { requireString, type Command, type CommandIO } from '../command.js';
import { loadRegistry } from '../context.js';

function bar(p: FilterProgress): string {
  const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : 0;
  const width = 24;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${line(p)}`;
}

function line(p: FilterProgress): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return `${n(p.documents)} docs, ${n(p.documentsPerSecond)} docs/s, kept ${n(p.kept)}, dropped ${n(p.dropped)}, malformed ${n(p.malformed)}, ${p.seconds.toFixed(1)} s`;
}

function progressPrinter(io: CommandIO): (p: FilterProgress) => void {
  let drawn = false;
  return (p) => {
    if (io.isTTY) {
      io.err(`${drawn ? '\x1b[1A\x1b[2K' : ''}${bar(p)}`);
      drawn = true;
    } else if (!p.done) {
      io.err(`filter: ${line(p)}, ${p.bytesTotal ? ((100 * p.bytesRead) / p.bytesTotal).toFixed(0) : 0}% read`);
    }
  };
}

function summary(r: FilterReport): string[] {
  const rows = [`${r.input.documents} documents in (${r.input.malformed} malformed lines, ${r.input.blank} blank), ${r.result.kept} kept, ${r.result.dropped} dropped; ${r.megabytesPerSecond} MB/s, ${r.documentsPerSecond} docs/s`];
  const width = Math.max(...r.filters.map((f) => f.label.length), 5);
  rows.push(`${'filter'.padEnd(width)} ${'seen'.padStart(9)} ${'dropped'.padStart(9)}  reasons`);
  if (r.input.malformed) {
    rows.push(`${'input'.padEnd(width)} ${String(r.input.lines).padStart(9)} ${String(r.input.malformed).padStart(9)}  ${Object.entries(r.input.reasons).map(([k, v]) => `${k} ${v.count}`).join(', ')}`);
  }
  for (const f of r.filters) {
    const reasons = Object.entries(f.reasons).sort((a, b) => b[1].count - a[1].count).map(([k, v]) => `${k} ${v.count}`).join(', ');
    rows.push(`${f.label.padEnd(width)} ${String(f.seen).padStart(9)} ${String(f.dropped).padStart(9)}  ${reasons}`);
  }
  return rows;
}

/** `yuan filter`: streams JSONL documents through a filter pipeline into a clean training set. */
export const filterCommand: Command = {
  path: ['filter'],
  summary: 'filter and deduplicate JSONL pretraining data (Chinese, English, code) with a report of what was dropped',
  usage:
    'yuan filter --input FILE [--input FILE ...] --output OUT.jsonl[.gz] [--rejects REJ.jsonl] [--report R.json] [--config filters.yaml] [--preset yuan-zh-en] [--set k=v ...] [--badwords LANG=FILE ...] [--shard I/N] [--json]',
  options: {
    input: { type: 'string', multiple: true },
    output: { type: 'string' },
    rejects: { type: 'string' },
    report: { type: 'string' },
    config: { type: 'string' },
    preset: { type: 'string' },
    set: { type: 'string', multiple: true },
    badwords: { type: 'string', multiple: true },
    shard: { type: 'string' },
    json: { type: 'boolean' },
    plugin: { type: 'string', multiple: true },
  },
  async run(values, positionals, io) {
    const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
    if (inputs.length === 0) throw new YuanError('usage', `missing --input\nusage: ${filterCommand.usage}`);
    const report = await runFilter({
      inputs,
      output: requireString(values, 'output', filterCommand),
      rejects: values.rejects as string | undefined,
      report: values.report as string | undefined,
      config: values.config as string | undefined,
      preset: values.preset as string | undefined,
      set: values.set as string[] | undefined,
      badwords: values.badwords as string[] | undefined,
      shard: values.shard as string | undefined,
      registry: await loadRegistry(values, undefined, { freeze: false }),
      onProgress: progressPrinter(io),
    });
    if (values.json) io.out(JSON.stringify(report, null, 2));
    else for (const row of summary(report)) io.out(row);
  },
};
