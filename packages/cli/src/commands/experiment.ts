import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { applySet, resolveConfig, YuanError, type JsonObject, type PluginRegistry, type YuanConfig } from '@yuan/core';
import { numberOption, requireString, type Command } from '../command.js';
import { attentionLookup } from '@yuan/model';
import {
  BACKEND_OPTION,
  BUILTIN_SOURCES,
  CONFIG_OPTIONS,
  loadConfig,
  loadRegistry,
  withPluginFlags,
} from '../context.js';
import { checkTrainingData, lineChartSvg, smooth, type RunResult, type Series } from '@yuan/train';
import { trainWithProgress } from '../training/run.js';
import { EOD_ID_OPTION, withEodId } from './train.js';

/**
 * An ablation variant: any registered attention plugin by name (`mha`, `lfa`, a third-party one), optionally with
 * options as `NAME:key=value,key=value`, or a plugin's named option set as `NAME-SUFFIX` (its `variant` descriptor:
 * the paper's Table 1 shorthands `lfa-nonorm`, `lfa-kN` and `lpa-rN`).
 */
function variantAttention(name: string, registry: PluginRegistry): { name: string; options: JsonObject } {
  const dash = name.indexOf('-');
  if (!name.includes(':') && dash > 0 && registry.has('attention', name.slice(0, dash))) {
    const plugin = registry.get('attention', name.slice(0, dash));
    const options = plugin.variant?.(name.slice(dash + 1));
    if (options) return { name: plugin.name, options: options as JsonObject };
  }
  const [plugin, rest] = name.split(':', 2) as [string, string | undefined];
  if (!registry.has('attention', plugin)) {
    const named = registry.names('attention').filter((n) => registry.get('attention', n).variant);
    throw new YuanError(
      'usage',
      `unknown variant "${name}" (registered attention plugins: ${registry.names('attention').join(', ')}; named variants NAME-SUFFIX of ${named.join(', ') || 'none'}; options as NAME:key=value,...)`,
    );
  }
  const options = (rest ?? '')
    .split(',')
    .filter(Boolean)
    .reduce<JsonObject>((acc, kv) => applySet(acc, kv), {});
  return { name: plugin, options };
}

interface Row {
  variant: string;
  attention: string;
  parameters: number;
  msPerStep: number;
  tokensPerSecond: number;
  validLoss: number;
  testLoss: number;
}

function pct(x: number, base: number): string {
  const d = ((x - base) / base) * 100;
  return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(1)}%`;
}

/** The ablation table in Markdown, with changes relative to the first variant (as the paper's Table 1 against basic attention). */
export function ablationTable(rows: Row[]): string {
  const base = rows[0];
  const lines = [
    '| variant | attention | params | Δ params | ms/step | Δ time | test loss | Δ loss |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.variant} | ${r.attention} | ${r.parameters.toLocaleString('en-US')} | ${r === base ? '—' : pct(r.parameters, base.parameters)} | ${r.msPerStep.toFixed(0)} | ${r === base ? '—' : pct(r.msPerStep, base.msPerStep)} | ${r.testLoss.toFixed(4)} | ${r === base ? '—' : pct(r.testLoss, base.testLoss)} |`,
    );
  }
  return lines.join('\n');
}

/** `yuan experiment ablation`: trains each attention variant with the same seed, data order and schedule and tabulates them. */
export const experimentAblation: Command = {
  path: ['experiment', 'ablation'],
  summary:
    'train attention variants (mha, lfa, lfa-kN, lpa, ...) with equal seed, tokens and schedule; print params, time/step, test loss',
  usage:
    'yuan experiment ablation --data DIR --steps N [--variants mha,lfa,lfa-k7,lpa] [--test DIR] [--test-batches 16] [--preset NAME] [--config F] [--set k=v ...] [--out DIR] [--seed S] [--backend NAME] [--eod-id N]',
  options: {
    ...CONFIG_OPTIONS,
    ...BACKEND_OPTION,
    ...EOD_ID_OPTION,
    data: { type: 'string' },
    steps: { type: 'string' },
    variants: { type: 'string' },
    test: { type: 'string' },
    'test-batches': { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, _pos, io) {
    const data = requireString(values, 'data', experimentAblation);
    if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${experimentAblation.usage}`);
    const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
    const testBatches = numberOption(values, 'test-batches', 16, { int: true, min: 1 });
    const names = ((values.variants as string | undefined) ?? 'mha,lfa,lfa-k7,lpa')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const base = withEodId(withPluginFlags(await loadConfig(values, 'tiny-mha'), values), values);
    const registry = await loadRegistry({}, base);
    const variants = names.map((n) => ({ name: n, attention: variantAttention(n, registry) }));
    const out = (values.out as string | undefined) ?? 'ablation';
    await mkdir(out, { recursive: true });
    const configs: YuanConfig[] = variants.map((v) =>
      resolveConfig({ ...(base as unknown as JsonObject), attention: v.attention }),
    );
    for (const c of configs) registry.get('attention', c.attention.name); // unknown plugins fail before any training
    // bad data (ids outside the vocabulary, an unknown or impossible --eod-id) fails once, before the first variant
    for (const dir of [data, ...(values.test ? [values.test as string] : [])]) checkTrainingData(base, dir);
    const rows: Row[] = [];
    const curves: Series[] = [];
    let backend = '';
    for (const [i, v] of variants.entries()) {
      io.err(`[${i + 1}/${variants.length}] ${v.name}: ${JSON.stringify(v.attention)}`);
      const r: RunResult & { backend: string } = await trainWithProgress(io, registry, {
        config: configs[i],
        lookup: attentionLookup(registry, BUILTIN_SOURCES),
        data,
        steps,
        out: path.join(out, v.name),
        seed,
        test: (values.test as string | undefined) ?? undefined,
        testBatches,
        backend: values.backend as string | undefined,
        label: `${v.name} `,
      });
      backend = r.backend;
      const testLoss = r.testLoss ?? r.validLoss;
      rows.push({
        variant: v.name,
        attention: `${v.attention.name}${Object.keys(v.attention.options).length ? ` ${JSON.stringify(v.attention.options)}` : ''}`,
        parameters: r.parameters,
        msPerStep: r.secondsPerStep * 1000,
        tokensPerSecond: r.tokensPerSecond,
        validLoss: r.validLoss,
        testLoss,
      });
      curves.push({ label: v.name, points: smooth(r.history.map((m) => [m.step, m.loss] as [number, number])) });
    }
    const table = ablationTable(rows);
    const testNote = values.test
      ? `test loss on ${testBatches} batches of ${values.test}`
      : `test loss = valid split of ${data}`;
    await writeFile(
      path.join(out, 'ablation.md'),
      `${table}\n\n${testNote}; ${steps} steps, seed ${seed}, preset ${base.preset}, backend ${backend}\n`,
    );
    await writeFile(
      path.join(out, 'ablation.json'),
      `${JSON.stringify({ steps, seed, preset: base.preset, backend, data, test: values.test ?? null, rows }, null, 2)}\n`,
    );
    await writeFile(
      path.join(out, 'ablation.svg'),
      lineChartSvg(`ablation: training loss (smoothed), ${steps} steps`, 'step', 'train loss', curves),
    );
    io.out(
      values.json ? JSON.stringify(rows) : `${table}\n\n${testNote}; backend ${backend}; tables and curves in ${out}`,
    );
  },
};
