import path from 'node:path';
import { ConfigError, deepMerge, YuanError, type JsonObject, type PluginRegistry, type YuanConfig } from '@yuan/core';
import type { TensorAdapterPlugin } from '@yuan/tensor';
import { numberOption, requireString, type Command, type CommandIO, type OptionSpec } from '../command.js';
import { BUILTIN_SOURCES, loadConfig, loadRegistry, overrideLayer, withPluginFlags } from '../context.js';

/**
 * `yuan train`'s adapter flags: `--model DIR` (the frozen base, a checkpoint or run folder; default: the preset
 * initialised from --seed), `--lora` (LoRA with its defaults) and `--lora-rank R`, `--lora-alpha A`,
 * `--lora-dropout P`, `--lora-targets q_proj,v_proj|all-linear` (each sets `adapter.options`).
 */
export const ADAPTER_TRAIN_OPTIONS: OptionSpec = {
  model: { type: 'string' },
  lora: { type: 'boolean' },
  'lora-rank': { type: 'string' },
  'lora-alpha': { type: 'string' },
  'lora-dropout': { type: 'string' },
  'lora-targets': { type: 'string' },
  weights: { type: 'string' },
};

/** The usage lines of the adapter flags. */
export const ADAPTER_TRAIN_USAGE =
  "  LoRA fine-tuning (the config's adapter section: adapter.name lora, adapter.options.rank/alpha/dropout/targets/rslora):\n" +
  '  [--model BASE_DIR] --lora | --lora-rank R [--lora-alpha A] [--lora-dropout P] [--lora-targets q_proj,k_proj,v_proj,o_proj|all-linear]\n' +
  '  [--recompute none|full] trains only the adapter over the frozen base (--model, else the preset initialised from --seed);\n' +
  "  --recompute full keeps only each layer's input and recomputes the layer in the backward (far less memory, one more\n" +
  "  forward per step); one process (no --pp/--dp). --weights bf16|int8|int4 keeps the frozen base's linears in that format\n" +
  '  (QLoRA-style: products on the packed weights, no float32 copy): a --preset base is drawn in it, a --model folder must\n' +
  '  store it (bf16 may also come from fp32; int8/int4 are GPTQ folders); it combines with --recompute full. Checkpoints are PEFT\n' +
  '  adapter folders (adapter_config.json + adapter_model.safetensors) for generate/serve/eval/forward --peft and yuan adapter merge.';

const LORA_FLAGS = ['lora', 'lora-rank', 'lora-alpha', 'lora-dropout', 'lora-targets'] as const;

/**
 * The --lora flags as a config layer: `{adapter: {name: 'lora', options: {...}}}`, merged over what a --config file or
 * --set gave (so `--lora --set adapter.options.dropout=0.1` works); undefined without such flags. `prior` is the adapter
 * name the config file or --set chose: another than lora is a usage error naming the flag, as is a bad number.
 */
export function loraLayer(values: Record<string, unknown>, prior?: unknown): JsonObject | undefined {
  const given = LORA_FLAGS.filter((f) => values[f] !== undefined && values[f] !== false);
  if (given.length === 0) return undefined;
  if (prior !== undefined && prior !== 'lora')
    throw new YuanError(
      'usage',
      `--${given[0]} sets a lora adapter, but the config's adapter is ${JSON.stringify(prior)}`,
    );
  const options: JsonObject = {};
  if (values['lora-rank'] !== undefined) options.rank = numberOption(values, 'lora-rank', 8, { int: true, min: 1 });
  if (values['lora-alpha'] !== undefined) options.alpha = numberOption(values, 'lora-alpha', 8, { min: 0 });
  if (values['lora-dropout'] !== undefined) options.dropout = numberOption(values, 'lora-dropout', 0, { min: 0 });
  if (values['lora-targets'] !== undefined) {
    const raw = values['lora-targets'] as string;
    const list = raw
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    if (list.length === 0)
      throw new YuanError(
        'usage',
        `--lora-targets ${JSON.stringify(raw)} names no module (e.g. q_proj,v_proj or all-linear)`,
      );
    options.targets = list.length === 1 && (list[0] === 'all-linear' || !/^\w+$/.test(list[0])) ? list[0] : list;
  }
  return { adapter: { name: 'lora', options } };
}

/** Whether `yuan train` was asked for an adapter run: --model, a --lora flag, or an adapter section in the config. */
export async function adapterRequested(values: Record<string, unknown>): Promise<boolean> {
  if (values.model !== undefined || LORA_FLAGS.some((f) => values[f] !== undefined && values[f] !== false)) return true;
  if (values.preset === undefined && values.config === undefined && values.set === undefined) return false;
  return (await loadConfig(values, 'tiny-lfa')).adapter !== undefined;
}

/** `train.*` set by the flags `yuan train` maps (--microbatches M, --eod-id N), winning over the config's. */
function withTrainFlags(config: YuanConfig, values: Record<string, unknown>): YuanConfig {
  const train = { ...((config.train as object | undefined) ?? {}) } as Record<string, unknown>;
  if (values.microbatches !== undefined)
    train.gradAccumulation = numberOption(values, 'microbatches', 1, { int: true, min: 1 });
  if (values['eod-id'] !== undefined) train.eodId = numberOption(values, 'eod-id', 0, { int: true, min: 0 });
  return { ...config, train };
}

const PARALLEL_FLAGS = ['pp', 'dp', 'zero', 'transport', 'timeout', 'schedule', 'partition'];

/**
 * An adapter run of `yuan train` (LoRA fine-tuning): the config is the base checkpoint's (`--model`; --config and --set
 * merged over it) or the preset's, with the --lora flags as its adapter section; the adapter's options are checked
 * against the model before anything runs. One process (a parallel layout is a usage error). Prints what `yuan train`
 * prints (`--json`: the same summary, plus `adapter` and `baseParameters`).
 */
export async function trainAdapter(values: Record<string, unknown>, io: CommandIO, cmd: Command): Promise<void> {
  const data = requireString(values, 'data', cmd);
  const out = requireString(values, 'out', cmd);
  if (values.steps === undefined) throw new YuanError('usage', `missing --steps\nusage: ${cmd.usage}`);
  const steps = numberOption(values, 'steps', 0, { int: true, min: 1 });
  const seed = numberOption(values, 'seed', 0, { int: true, min: 0 });
  const parallel = PARALLEL_FLAGS.filter((f) => values[f] !== undefined);
  if (parallel.length)
    throw new YuanError(
      'usage',
      `--${parallel[0]}: an adapter (LoRA) run trains in one process; leave out the parallel layout flags`,
    );
  const { rankFromEnvironment } = await import('@yuan/comm');
  if (rankFromEnvironment().worldSize > 1)
    throw new YuanError(
      'usage',
      'an adapter (LoRA) run trains in one process: start it without yuan launch, srun or an indexed Job',
    );
  const recompute = (values.recompute as string | undefined) ?? 'none';
  if (recompute !== 'none' && recompute !== 'full')
    throw new YuanError(
      'usage',
      `--recompute ${JSON.stringify(recompute)}: an adapter run takes none (keep every activation) or full (recompute each layer in the backward)`,
    );
  if (values.model !== undefined && values.preset !== undefined)
    throw new YuanError(
      'usage',
      '--model (the base checkpoint, whose config.json gives the model) and --preset exclude each other',
    );
  const weightsFormat = values.weights as string | undefined;
  const model = await import('@yuan/model');
  const train = await import('@yuan/train');
  const baseDir = values.model !== undefined ? model.resolveModelDir(values.model as string) : undefined;
  let config: YuanConfig;
  let registry: PluginRegistry | undefined;
  let baseWeights: Map<string, Float32Array> | undefined;
  const { initBackend } = await import('@yuan/tensor');
  const overrides = overrideLayer(values);
  const flags = loraLayer(values, (overrides.adapter as { name?: unknown } | undefined)?.name);
  if (baseDir !== undefined && !flags && overrides.adapter === undefined) {
    throw new YuanError(
      'usage',
      '--model trains an adapter over the base: add --lora (or --lora-rank R, or an adapter section in --config)',
    );
  }
  let stored: import('@yuan/model').InferenceWeights | undefined;
  if (baseDir !== undefined && weightsFormat !== undefined) {
    registry = await loadRegistry({ ...values, model: baseDir });
    const read = await model.readStoredModel(
      baseDir,
      model.attentionLookup(registry),
      flags ? deepMerge(overrides, flags) : overrides,
      {
        onIgnored: (line) => io.err(line),
        formats: registry.list('weight-format') as unknown as import('@yuan/tensor').TensorWeightFormat[],
      },
    );
    config = read.config;
    stored = await packedAs(read.weights, weightsFormat, baseDir);
  } else if (baseDir !== undefined) {
    registry = await loadRegistry({ ...values, model: baseDir });
    const read = await model.readCheckpoint(
      baseDir,
      model.attentionLookup(registry, BUILTIN_SOURCES),
      flags ? deepMerge(overrides, flags) : overrides,
    );
    if (read.ignored.length) io.err(model.ignoredTensorsNote(baseDir, read.ignored));
    config = read.config;
    baseWeights = read.weights;
  } else {
    config = flags ? await loadConfig(values, 'tiny-lfa', flags) : await loadConfig(values, 'tiny-lfa');
  }
  config = withTrainFlags(withPluginFlags(config, values), values);
  if (!config.adapter)
    throw new YuanError(
      'usage',
      'an adapter run needs an adapter: add --lora (or --lora-rank R, or an adapter section in --config)',
    );
  const parallelSection = config.parallel as { pp?: number; dp?: number } | undefined;
  if ((parallelSection?.pp ?? 1) > 1 || (parallelSection?.dp ?? 1) > 1)
    throw new YuanError(
      'usage',
      "an adapter (LoRA) run trains in one process; the config's parallel section asks for more",
    );
  registry ??= await loadRegistry({}, config);
  const plugin = registry.get('adapter', config.adapter.name) as unknown as TensorAdapterPlugin<unknown>;
  const attention = model.attentionLookup(registry, BUILTIN_SOURCES)(config.attention.name);
  const options = config.adapter.options ?? {};
  // the options and targets are checked against this model before the data or the backend is touched
  const specs = model.modelParameters(config, attention);
  const adapterParams = plugin
    .parameters(specs, model.adapterOptions(plugin, options))
    .reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  if (adapterParams === 0)
    throw new ConfigError(`invalid config: the ${plugin.name} adapter with these options has no parameters`);
  const baseParameters = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  if (weightsFormat !== undefined && !stored) {
    // a preset's base drawn in the format (the same distributions as the training initialisation, another stream)
    const format = registry.get('weight-format', weightsFormat) as unknown as import('@yuan/tensor').TensorWeightFormat;
    await (await import('@yuan/tensor')).loadDecodeKernels();
    stored = model.randomInferenceWeights(config, attention, seed, { format });
  }
  let held = baseWeights;
  baseWeights = undefined;
  let packed = stored;
  stored = undefined;
  const training = {
    plugin,
    options,
    baseDir: baseDir === undefined ? null : path.resolve(baseDir),
    recompute: recompute === 'full',
    ...(packed
      ? {
          storedBase: async () => {
            const w = packed!;
            packed = undefined;
            return w;
          },
        }
      : {}),
    ...(held
      ? {
          base: async () => {
            const w = held!;
            held = undefined;
            return w;
          },
        }
      : {}),
  };
  await initBackend(values.backend as string | undefined, registry);
  const { trainWithProgress } = await import('./run.js');
  io.err(
    `${plugin.name} adapter: ${adapterParams.toLocaleString('en-US')} trainable parameters over a frozen ${weightsFormat ? `${weightsFormat} ` : ''}base of ${baseParameters.toLocaleString('en-US')} (${baseDir ?? `${config.preset} initialised from seed ${seed}`})`,
  );
  const r = await trainWithProgress(io, registry, {
    config,
    engine: train.adapterEngine(training),
    weightFiles: train.adapterWeightFiles(training, config, attention),
    lookup: model.attentionLookup(registry, BUILTIN_SOURCES),
    data,
    steps,
    out,
    seed,
    metrics: values.metrics as string | undefined,
    resume: values.resume as string | undefined,
    backend: values.backend as string | undefined,
  });
  const summary = {
    steps: r.steps,
    trainedSteps: r.history.length,
    parameters: r.parameters,
    loss: r.finalLoss,
    validLoss: Number.isFinite(r.validLoss) ? r.validLoss : null,
    secondsPerStep: r.secondsPerStep,
    tokensPerSecond: r.tokensPerSecond,
    out,
    adapter: plugin.name,
    baseParameters,
  };
  const trained =
    summary.trainedSteps === summary.steps
      ? `${summary.steps} steps`
      : `steps ${summary.steps - summary.trainedSteps + 1}–${summary.steps} (${summary.trainedSteps} after the resume)`;
  io.out(
    values.json
      ? JSON.stringify(summary)
      : `trained ${trained} of a ${plugin.name} adapter (${summary.parameters.toLocaleString('en-US')} parameters; base frozen): loss ${summary.loss.toFixed(4)}, valid ${summary.validLoss === null ? 'n/a' : summary.validLoss.toFixed(4)}, ${summary.tokensPerSecond.toFixed(0)} tokens/s; adapter checkpoints in ${out}`,
  );
}

/**
 * The stored base with its decoder linears in `format` (`--weights`): each must be stored so, except that fp32 ones
 * become bf16 when bf16 is asked; anything else is a usage error naming the weight, its format and the folder.
 */
async function packedAs(
  weights: import('@yuan/model').InferenceWeights,
  format: string,
  dir: string,
): Promise<import('@yuan/model').InferenceWeights> {
  const { toBf16Weight } = await import('@yuan/tensor');
  const linears = new Map(weights.linears);
  for (const [name, w] of weights.linears) {
    if (name === 'model.embed_tokens' || w.format.name === format) continue;
    if (format === 'bf16' && w.format.name === 'fp32') {
      linears.set(name, toBf16Weight(w.f32!, w.out, w.in));
      continue;
    }
    // LFA's convolutions are stored like linears but stay float32 parameters: any format is fine for them
    if (/\.conv\d+$/.test(name)) continue;
    throw new YuanError(
      'usage',
      `--weights ${format}: ${dir} stores ${name} as ${w.format.name} (int8/int4 need a GPTQ folder; bf16 can come from fp32)`,
    );
  }
  return { linears, vectors: weights.vectors };
}
