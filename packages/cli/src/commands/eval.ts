import path from 'node:path';
import { YuanError, type ModelAdapter } from '@yuan/core';
import {
  defaultDataDir,
  formatResultTable,
  getEvaluator,
  OpenAIEndpointAdapter,
  readSamplesFile,
  runEvaluation,
} from '@yuan/eval';
import { LocalModelAdapter } from '@yuan/model';
import { numberOption, type Command } from '../command.js';
import { BACKEND_OPTION, buildRegistry, openModel, openTokenizer } from '../context.js';

/** Opens `--model DIR` (with `--tokenizer` where the checkpoint names none) as a ModelAdapter: generate, logLikelihood, tokenLosses. */
async function openLocalModel(dir: string, values: Record<string, unknown>): Promise<ModelAdapter> {
  const registry = buildRegistry();
  const model = await openModel({ ...values, model: dir }, registry);
  const tokenizer = await openTokenizer(registry, values.tokenizer as string | undefined, model.config);
  return new LocalModelAdapter(model, tokenizer, path.basename(dir));
}

/** Flags that set an evaluator option, by evaluator: flag → [option, parse]. */
const YUAN: Record<string, [string, 'string']> = { protocol: ['protocol', 'string'], lang: ['lang', 'string'] };
const TASK_FLAGS: Record<string, Record<string, [string, 'string' | 'ms' | 'int' | 'seed']>> = {
  humaneval: {
    timeout: ['timeoutMs', 'ms'],
    'memory-mb': ['memoryMb', 'int'],
    isolation: ['isolation', 'string'],
    completion: ['completion', 'string'],
    protocol: ['protocol', 'string'],
    select: ['select', 'string'],
    'test-samples': ['testSamples', 'int'],
  },
  gsm8k: { 'prompt-style': ['prompt', 'string'], ...YUAN },
  mathqa: YUAN,
  mathcloze: YUAN,
  truthfulqa: { ...YUAN, 'shuffle-seed': ['shuffleSeed', 'seed'] },
  svamp: { 'prompt-style': ['prompt', 'string'] },
  agieval: { subsets: ['subsets', 'string'], method: ['method', 'string'] },
  perplexity: { file: ['file', 'string'], 'chunk-chars': ['chunkChars', 'int'] },
};

function taskOptions(task: string, values: Record<string, unknown>): Record<string, unknown> {
  const own = TASK_FLAGS[task] ?? {};
  const options: Record<string, unknown> = {};
  for (const flag of new Set(Object.values(TASK_FLAGS).flatMap((f) => Object.keys(f)))) {
    if (values[flag] === undefined) continue;
    const spec = own[flag];
    if (!spec) throw new YuanError('usage', `--${flag} does not apply to ${task}`);
    const [name, kind] = spec;
    if (kind === 'string') options[name] = values[flag];
    else if (kind === 'ms') options[name] = Math.round(numberOption(values, flag, 0, { min: 0.001 }) * 1000);
    else if (kind === 'seed') options[name] = numberOption(values, flag, 0, { int: true, min: -1 });
    else options[name] = numberOption(values, flag, 0, { int: true, min: 1 });
  }
  return options;
}

function kList(raw: string | undefined): number[] {
  if (raw === undefined) return [1];
  const ks = raw.split(',').map((s) => Number(s.trim()));
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new YuanError('usage', `--k "${raw}" must be a comma-separated list of positive integers, e.g. 1,10`);
  return [...new Set(ks)].sort((a, b) => a - b);
}

/** `yuan eval TASK`: runs an evaluation on a local model, an OpenAI-compatible endpoint or supplied samples. */
export const evalCommand: Command = {
  path: ['eval'],
  summary: 'evaluate a model (humaneval, gsm8k, svamp, agieval, mathqa, mathcloze, truthfulqa, perplexity): local --model, --endpoint, or --samples',
  usage:
    'yuan eval TASK (--model DIR [--tokenizer F] [--backend B] | --endpoint URL --api-model NAME [--chat] [--api-key-env VAR] | --samples FILE.jsonl) ' +
    '[--n N --k 1,10 --temperature T --top-p P --max-new-tokens M --seed S --limit L --workers W] [--output DIR] [--data-dir DIR] [--json] ' +
    '[humaneval: --timeout SECONDS --memory-mb MB --isolation auto|namespaces|plain --completion raw|code-block --protocol yuan|default --select none|tests --test-samples N] ' +
    '[gsm8k/svamp: --prompt-style qa|yuan] [gsm8k, mathqa, mathcloze, truthfulqa: --protocol yuan|default --lang zh|en] [truthfulqa: --shuffle-seed S|-1] ' +
    '[agieval: --subsets a,b --method auto|loglik|extract] [perplexity: --file TEXT --chunk-chars C] ' +
    '[endpoint: --concurrency C --retries R --request-timeout SECONDS --logprobs]',
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
    timeout: { type: 'string' },
    'memory-mb': { type: 'string' },
    isolation: { type: 'string' },
    completion: { type: 'string' },
    'prompt-style': { type: 'string' },
    subsets: { type: 'string' },
    method: { type: 'string' },
    file: { type: 'string' },
    'chunk-chars': { type: 'string' },
    protocol: { type: 'string' },
    lang: { type: 'string' },
    select: { type: 'string' },
    'test-samples': { type: 'string' },
    'shuffle-seed': { type: 'string' },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new YuanError('usage', `give exactly one TASK (humaneval, gsm8k, svamp, agieval, mathqa, mathcloze, truthfulqa, perplexity)\nusage: ${evalCommand.usage}`);
    const task = positionals[0]!;
    const evaluator = getEvaluator(task);
    const sources = ['model', 'endpoint', 'samples'].filter((s) => values[s] !== undefined);
    if (sources.length !== 1) throw new YuanError('usage', `give exactly one of --model DIR, --endpoint URL or --samples FILE.jsonl\nusage: ${evalCommand.usage}`);
    const endpointFlags = ['api-model', 'api-key-env', 'chat', 'concurrency', 'retries', 'request-timeout', 'logprobs'].filter((f) => values[f] !== undefined);
    if (values.endpoint === undefined && endpointFlags.length) throw new YuanError('usage', `--${endpointFlags[0]} only applies with --endpoint`);
    const n = numberOption(values, 'n', 1, { int: true, min: 1 });
    const k = kList(values.k as string | undefined);
    const settings = {
      n,
      k,
      temperature: numberOption(values, 'temperature', 0, { min: 0 }),
      workers: numberOption(values, 'workers', 2, { int: true, min: 1 }),
      dataDir: path.resolve((values['data-dir'] as string | undefined) ?? defaultDataDir()),
      ...(values['top-p'] !== undefined ? { topP: numberOption(values, 'top-p', 1, { min: 0 }) } : {}),
      ...(values['max-new-tokens'] !== undefined ? { maxNewTokens: numberOption(values, 'max-new-tokens', 0, { int: true, min: 1 }) } : {}),
      ...(values.seed !== undefined ? { seed: numberOption(values, 'seed', 0, { int: true }) } : {}),
      ...(values.limit !== undefined ? { limit: numberOption(values, 'limit', 0, { int: true, min: 1 }) } : {}),
    };
    const options = taskOptions(task, values);
    let model: ModelAdapter | undefined;
    let completions: Map<string, string[]> | undefined;
    if (values.samples !== undefined) {
      completions = readSamplesFile(path.resolve(values.samples as string));
      const counts = new Set([...completions.values()].map((c) => c.length));
      if (values.n === undefined && counts.size === 1) settings.n = [...counts][0]!;
    } else if (values.endpoint !== undefined) {
      if (values['api-model'] === undefined) throw new YuanError('usage', `--endpoint needs --api-model NAME (the model name the server expects)`);
      model = new OpenAIEndpointAdapter({
        endpoint: values.endpoint as string,
        model: values['api-model'] as string,
        chat: Boolean(values.chat),
        logprobs: Boolean(values.logprobs),
        ...(values['api-key-env'] ? { apiKeyEnv: values['api-key-env'] as string } : {}),
        concurrency: numberOption(values, 'concurrency', settings.workers, { int: true, min: 1 }),
        retries: numberOption(values, 'retries', 3, { int: true, min: 0 }),
        timeoutMs: Math.round(numberOption(values, 'request-timeout', 120, { min: 0.001 }) * 1000),
      });
    } else {
      model = await openLocalModel(path.resolve(values.model as string), values);
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
      if (values.json) io.out(JSON.stringify({ ...run.result, samplesFile: run.samplesFile, summaryFile: run.summaryFile }));
      else {
        io.out(formatResultTable(run.result));
        io.out(`per-sample log: ${run.samplesFile}\nsummary: ${run.summaryFile}`);
      }
    } finally {
      await model?.close?.();
    }
  },
};
