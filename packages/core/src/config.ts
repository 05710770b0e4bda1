import { ConfigError, YuanError } from './errors.js';
import { deepMerge, type JsonObject } from './merge.js';
import { num, obj, optional, record, str, arrayOf, type Schema } from './schema.js';

/** The shape of a YUAN-style decoder. Defaults are YUAN 2.0's: RMSNorm eps 1e-6, RoPE base 10000, init std 0.02. */
export interface ModelShape {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** The SwiGLU inner size F (YUAN 2.0: 4 × hidden); the fused up/gate projection has 2F outputs. */
  ffnSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeBase: number;
  initStd: number;
}

/** A reference to a plugin by name with its JSON options. */
export interface PluginRef {
  name: string;
  options: Record<string, unknown>;
}

/** The tokenizer: `bytes` (built in, for tiny presets) or `sentencepiece` with a `.model` path. */
export interface TokenizerRef {
  name: string;
  path?: string;
}

/** A whole run's configuration: model shape, attention plugin, tokenizer, extra plugin packages and sections owned by other packages. */
export interface YuanConfig {
  /** The preset this config started from, or `custom`. */
  preset: string;
  model: ModelShape;
  attention: PluginRef;
  tokenizer: TokenizerRef;
  /** Third-party plugin packages or paths to load before the registry is frozen. */
  plugins: string[];
  /** A weight adapter to train over the frozen model (`{name: 'lora', options: {rank, alpha, ...}}`); absent: none. */
  adapter?: { name: string; options?: Record<string, unknown> };
  /** Sections owned by other packages, validated by them: `train` (@yuan/model), `parallel` (the layout: @yuan/parallel-pipeline with @yuan/parallel-zero). */
  [section: string]: unknown;
}

const modelSchema = obj({
  vocabSize: num({ int: true, min: 2 }),
  hiddenSize: num({ int: true, min: 2 }),
  numLayers: num({ int: true, min: 1 }),
  numHeads: num({ int: true, min: 1 }),
  ffnSize: num({ int: true, min: 1 }),
  maxPositions: num({ int: true, min: 1 }),
  rmsNormEps: num({ gt: 0 }),
  ropeBase: num({ gt: 1 }),
  initStd: num({ gt: 0 }),
});

const pluginRefSchema = obj({ name: str(), options: record() });

/** Built-in defaults that every preset and config file is merged over. */
export const DEFAULT_CONFIG: YuanConfig = {
  preset: 'custom',
  model: {
    vocabSize: 264,
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    ffnSize: 512,
    maxPositions: 512,
    rmsNormEps: 1e-6,
    ropeBase: 10000,
    initStd: 0.02,
  },
  attention: { name: 'lfa', options: {} },
  tokenizer: { name: 'bytes' },
  plugins: [],
};

const knownSections: Record<string, Schema<unknown>> = {
  preset: str(),
  model: modelSchema,
  attention: pluginRefSchema,
  tokenizer: obj({ name: str(), path: optional(str()) }),
  plugins: arrayOf(str()),
  adapter: optional(obj({ name: str(), options: optional(record()) })),
};

/**
 * Validates a whole config: the core sections strictly (a bad field is named with its value and what was expected;
 * the optional `adapter` section's options are checked by its plugin when a run looks it up) and that the hidden size
 * splits into heads of even size (RoPE rotates halves). Other sections pass through.
 */
export function validateConfig(raw: JsonObject): YuanConfig {
  const out: JsonObject = { ...raw };
  for (const [key, schema] of Object.entries(knownSections)) {
    const value = schema.parse(raw[key], key);
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  const cfg = out as YuanConfig;
  const { hiddenSize, numHeads } = cfg.model;
  if (hiddenSize % numHeads !== 0) {
    throw new ConfigError(
      `invalid config: model.hiddenSize = ${hiddenSize} is not divisible by model.numHeads = ${numHeads}`,
    );
  }
  if ((hiddenSize / numHeads) % 2 !== 0) {
    throw new ConfigError(
      `invalid config: head size model.hiddenSize / model.numHeads = ${hiddenSize / numHeads}; expected an even number (RoPE rotates halves)`,
    );
  }
  return cfg;
}

/** Merges layers in precedence order (defaults < preset < file < --set) and validates the result. */
export function resolveConfig(...layers: JsonObject[]): YuanConfig {
  return validateConfig(
    layers.reduce<JsonObject>((acc, l) => deepMerge(acc, l), DEFAULT_CONFIG as unknown as JsonObject),
  );
}

/**
 * M/D: the micro-batches each of `dataParallel` ranks runs of a step's `microbatches` (the global batch is M micro-batches
 * whatever the layout, as Megatron's global batch = micro-batch × accumulation × D). Throws YuanError 'usage' naming
 * the flags when D does not divide M; `ranks` words D when it came from the launcher rather than `--dp`.
 */
export function microbatchesPerRank(
  microbatches: number,
  dataParallel: number,
  ranks = `--dp ${dataParallel}`,
): number {
  if (microbatches % dataParallel === 0) return microbatches / dataParallel;
  const m = `${microbatches} micro-batch${microbatches === 1 ? '' : 'es'}`;
  throw new YuanError(
    'usage',
    `${ranks} does not divide the step's ${m} (--microbatches M, or train.gradAccumulation): each data-parallel rank runs M/D of them; give --microbatches ${dataParallel} or a multiple of it`,
  );
}
