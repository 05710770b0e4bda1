import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  parseSetValue,
  YuanError,
  type EvaluatorPlugin,
  type ModelAdapter,
  type ModelAdapterPlugin,
  type PluginRegistry,
} from '@yuan/core';
import { defaultDataDir, formatResultTable, readSamplesFile, runEvaluation } from '@yuan/eval';
import { numberOption, type Command, type OptionSpec } from '../command.js';
import { BACKEND_OPTION, loadConfig, loadRegistry, setLayer } from '../context.js';

/** The registry for an eval run: built-ins, `--config` plugins, a checkpoint's recorded plugins, `--plugin` modules. */
async function registryFor(values: Record<string, unknown>): Promise<PluginRegistry> {
  return loadRegistry(values, values.config ? await loadConfig(values) : undefined);
}

/** The evaluator TASK names, with the registered ones listed when it is unknown. */
function evaluatorOf(registry: PluginRegistry, task: string): EvaluatorPlugin {
  return registry.get('evaluator', task) as EvaluatorPlugin;
}

/** parseArgs options for the flags an evaluator declares. */
function flagOptions(evaluator: EvaluatorPlugin): OptionSpec {
  const out: OptionSpec = {};
  for (const [flag, f] of Object.entries(evaluator.flags ?? {}))
    out[flag] = { type: f.type === 'boolean' ? 'boolean' : 'string' };
  return out;
}

/** The evaluator's options from its declared flags and from `--option key=value` (any option, any evaluator). */
function evaluatorOptions(evaluator: EvaluatorPlugin, values: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [flag, f] of Object.entries(evaluator.flags ?? {})) {
    if (values[flag] === undefined) continue;
    if (f.type === 'string' || f.type === 'boolean') options[f.option] = values[flag];
    else if (f.type === 'seconds') options[f.option] = Math.round(numberOption(values, flag, 0, { min: 0.001 }) * 1000);
    else if (f.type === 'integer') options[f.option] = numberOption(values, flag, 0, { int: true });
    else
      options[f.option] = numberOption(values, flag, 0, {
        int: f.type === 'int',
        min: f.type === 'int' ? 1 : undefined,
      });
  }
  for (const kv of (values.option as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new YuanError('usage', `--option ${JSON.stringify(kv)} must be KEY=VALUE`);
    const key = kv.slice(0, eq);
    if (['__proto__', 'constructor', 'prototype'].includes(key))
      throw new YuanError('usage', `--option ${key} is not an option name`);
    options[key] = parseSetValue(kv.slice(eq + 1));
  }
  return options;
}

/** Scans raw arguments for the options that decide the plugins (before the evaluator's own flags are known). */
function prescan(argv: string[]): Record<string, unknown> {
  const { values } = parseArgs({
    args: argv,
    options: { plugin: { type: 'string', multiple: true }, config: { type: 'string' }, model: { type: 'string' } },
    allowPositionals: true,
    strict: false,
  });
  return values;
}

function kList(raw: string | undefined): number[] {
  if (raw === undefined) return [1];
  const ks = raw.split(',').map((s) => Number(s.trim()));
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1))
    throw new YuanError('usage', `--k "${raw}" must be a comma-separated list of positive integers, e.g. 1,10`);
  return [...new Set(ks)].sort((a, b) => a - b);
}

/** `yuan eval TASK`: runs an evaluation on a local model, an OpenAI-compatible endpoint or supplied samples. */
export const evalCommand: Command = {
  path: ['eval'],
  summary:
    'evaluate a model (humaneval, gsm8k, svamp, agieval, mathqa, mathcloze, truthfulqa, perplexity): local --model, --endpoint, or --samples',
  usage:
    'yuan eval TASK (--model DIR [--peft ADAPTER_DIR] [--tokenizer F] [--backend B] | --endpoint URL --api-model NAME [--chat] [--api-key-env VAR] | --samples FILE.jsonl) ' +
    '[--adapter NAME] [--n N --k 1,10 --temperature T --top-p P --max-new-tokens M --seed S --limit L --workers W] [--output DIR] [--data-dir DIR] [--json] ' +
    '[--option KEY=VALUE ...] [--plugin PKG|PATH ...] [--config F] [the flags TASK declares, e.g. humaneval: --timeout SECONDS --memory-mb MB ' +
    '--isolation auto|namespaces|plain --completion raw|code-block; gsm8k/svamp: --prompt-style qa|yuan; agieval: --subsets a,b --method auto|loglik|extract; ' +
    'perplexity: --file TEXT --chunk-chars C; gsm8k/mathqa/mathcloze/truthfulqa: --protocol default|yuan --lang zh|en; truthfulqa: --shuffle-seed N; ' +
    'humaneval: --protocol yuan --select tests --test-samples N] [endpoint: --concurrency C --retries R --request-timeout SECONDS --logprobs]; ' +
    '`yuan plugins list --kind evaluator --json` lists the tasks and their flags',
  options: {
    model: { type: 'string' },
    tokenizer: { type: 'string' },
    ...BACKEND_OPTION,
    endpoint: { type: 'string' },
    'api-model': { type: 'string' },
    'api-key-env': { type: 'string' },
    chat: { type: 'boolean' },
    concurrency: { type: 'string' },
    retries: { type: 'string' },
    'request-timeout': { type: 'string' },
    logprobs: { type: 'boolean' },
    samples: { type: 'string' },
    n: { type: 'string' },
    k: { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    'max-new-tokens': { type: 'string' },
    seed: { type: 'string' },
    limit: { type: 'string' },
    workers: { type: 'string' },
    output: { type: 'string' },
    'data-dir': { type: 'string' },
    json: { type: 'boolean' },
    option: { type: 'string', multiple: true },
    plugin: { type: 'string', multiple: true },
    config: { type: 'string' },
    set: { type: 'string', multiple: true },
    adapter: { type: 'string' },
    peft: { type: 'string' },
  },
  async resolveOptions(argv) {
    const task = argv[0];
    if (!task || task.startsWith('-')) return evalCommand.options;
    const evaluator = evaluatorOf(await registryFor(prescan(argv)), task);
    return { ...evalCommand.options, ...flagOptions(evaluator) };
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1)
      throw new YuanError(
        'usage',
        `give exactly one TASK (yuan plugins list --kind evaluator lists them)\nusage: ${evalCommand.usage}`,
      );
    const task = positionals[0]!;
    const registry = await registryFor(values);
    const evaluator = evaluatorOf(registry, task);
    const sources = ['model', 'endpoint', 'samples'].filter((s) => values[s] !== undefined);
    if (sources.length !== 1)
      throw new YuanError(
        'usage',
        `give exactly one of --model DIR, --endpoint URL or --samples FILE.jsonl\nusage: ${evalCommand.usage}`,
      );
    const endpointFlags = [
      'api-model',
      'api-key-env',
      'chat',
      'concurrency',
      'retries',
      'request-timeout',
      'logprobs',
    ].filter((f) => values[f] !== undefined);
    if (values.endpoint === undefined && endpointFlags.length)
      throw new YuanError('usage', `--${endpointFlags[0]} only applies with --endpoint`);
    if (values.peft !== undefined && values.model === undefined)
      throw new YuanError('usage', '--peft (an adapter over the local model) only applies with --model');
    const n = numberOption(values, 'n', 1, { int: true, min: 1 });
    const k = kList(values.k as string | undefined);
    const settings = {
      n,
      k,
      temperature: numberOption(values, 'temperature', 0, { min: 0 }),
      workers: numberOption(values, 'workers', 2, { int: true, min: 1 }),
      dataDir: path.resolve((values['data-dir'] as string | undefined) ?? defaultDataDir()),
      ...(values['top-p'] !== undefined ? { topP: numberOption(values, 'top-p', 1, { min: 0 }) } : {}),
      ...(values['max-new-tokens'] !== undefined
        ? { maxNewTokens: numberOption(values, 'max-new-tokens', 0, { int: true, min: 1 }) }
        : {}),
      ...(values.seed !== undefined ? { seed: numberOption(values, 'seed', 0, { int: true }) } : {}),
      ...(values.limit !== undefined ? { limit: numberOption(values, 'limit', 0, { int: true, min: 1 }) } : {}),
    };
    const options = evaluatorOptions(evaluator, values);
    const adapter = (name: string) => {
      const plugin = registry.get('model-adapter', name) as ModelAdapterPlugin<Record<string, unknown>>;
      return {
        open(given: Record<string, unknown>, context: { registry: PluginRegistry; note?: (line: string) => void }) {
          const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
          const merged = { ...(plugin.defaults as Record<string, unknown>), ...defined };
          return plugin.open(plugin.validate ? plugin.validate(merged) : merged, context);
        },
      };
    };
    let model: ModelAdapter | undefined;
    let completions: Map<string, string[]> | undefined;
    if (values.samples !== undefined) {
      completions = readSamplesFile(path.resolve(values.samples as string));
      const counts = new Set([...completions.values()].map((c) => c.length));
      if (values.n === undefined && counts.size === 1) settings.n = [...counts][0]!;
    } else if (values.endpoint !== undefined) {
      if (values['api-model'] === undefined)
        throw new YuanError('usage', `--endpoint needs --api-model NAME (the model name the server expects)`);
      model = await adapter((values.adapter as string | undefined) ?? 'openai').open(
        {
          endpoint: values.endpoint as string,
          model: values['api-model'] as string,
          chat: Boolean(values.chat),
          logprobs: Boolean(values.logprobs),
          ...(values['api-key-env'] ? { apiKeyEnv: values['api-key-env'] as string } : {}),
          concurrency: numberOption(values, 'concurrency', settings.workers, { int: true, min: 1 }),
          retries: numberOption(values, 'retries', 3, { int: true, min: 0 }),
          timeoutMs: Math.round(numberOption(values, 'request-timeout', 120, { min: 0.001 }) * 1000),
        },
        { registry },
      );
    } else {
      const dir = path.resolve(values.model as string);
      model = await adapter((values.adapter as string | undefined) ?? 'local').open(
        {
          path: dir,
          tokenizer: values.tokenizer,
          backend: values.backend,
          overrides: setLayer(values),
          name: path.basename(dir),
          ...(values.peft !== undefined ? { peft: path.resolve(values.peft as string) } : {}),
        },
        { registry, note: io.err },
      );
    }
    const outputDir = path.resolve((values.output as string | undefined) ?? path.join('eval-results', evaluator.name));
    let lastShown = -1;
    try {
      const run = await runEvaluation({
        evaluator,
        options,
        settings,
        ...(model ? { model } : {}),
        ...(completions ? { completions } : {}),
        outputDir,
        progress: (done, total) => {
          const tenth = Math.floor((done / total) * 10);
          if (tenth !== lastShown && !values.json) {
            lastShown = tenth;
            io.err(`${evaluator.name}: ${done}/${total} tasks generated`);
          }
        },
      });
      if (values.json)
        io.out(JSON.stringify({ ...run.result, samplesFile: run.samplesFile, summaryFile: run.summaryFile }));
      else {
        io.out(formatResultTable(run.result));
        io.out(`per-sample log: ${run.samplesFile}\nsummary: ${run.summaryFile}`);
      }
    } finally {
      await model?.close?.();
    }
  },
};
