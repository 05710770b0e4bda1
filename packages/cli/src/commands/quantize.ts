import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  openTokenizer as openRegisteredTokenizer,
  parseSetValue,
  YuanError,
  type JsonObject,
  type QuantizeGrid,
  type QuantizerPlugin,
  type Tokenizer,
} from '@yuan/core';
import { numberOption, requireString, type Command } from '../command.js';
import { BACKEND_OPTION, BUILTIN_SOURCES, loadRegistry, PLUGIN_OPTION } from '../context.js';
import { Progress } from '../training/progress.js';

/** Defaults of the calibration flags: 256 windows of 512 tokens (at most the model's positions), seed 0, 8 per batch. */
const CALIBRATION_DEFAULTS = { samples: 256, seq: 512, seed: 0, batch: 8 };

const FLAGS_OF_CALIBRATION = ['calibration', 'samples', 'seq', 'seed', 'batch', 'tokenizer'] as const;

/** `--group 128`, `--group=-1` or `--group channel` (one group per output row) as a group size. */
function groupOption(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'channel' || raw === '-1') return -1;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new YuanError(
      'usage',
      `--group ${JSON.stringify(raw)} must be a positive integer, or -1 / channel for one group per output row (write --group=-1)`,
    );
  }
  return n;
}

/** The quantizer's options: its defaults < `--option KEY=VALUE` < the flags, checked by the plugin. */
function quantizerOptions(
  plugin: QuantizerPlugin,
  values: Record<string, unknown>,
): QuantizeGrid & Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const kv of (values.option as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new YuanError('usage', `--option ${JSON.stringify(kv)} must be KEY=VALUE`);
    const key = kv.slice(0, eq);
    if (['__proto__', 'constructor', 'prototype'].includes(key))
      throw new YuanError('usage', `--option ${key} is not an option name`);
    given[key] = parseSetValue(kv.slice(eq + 1));
  }
  if (values.bits !== undefined) {
    const bits = Number(values.bits);
    if (bits !== 4 && bits !== 8) throw new YuanError('usage', `--bits ${JSON.stringify(values.bits)} must be 4 or 8`);
    given.bits = bits;
  }
  const group = groupOption(values.group);
  if (group !== undefined) given.groupSize = group;
  if (values.sym) given.sym = true;
  const own = plugin.defaults as unknown as Record<string, unknown>;
  if (values['act-order']) {
    if (!('actOrder' in own))
      throw new YuanError('usage', `--act-order applies to gptq, not to quantizer ${plugin.name}`);
    given.actOrder = true;
  }
  if (values.damp !== undefined) {
    if (!('damp' in own)) throw new YuanError('usage', `--damp applies to gptq, not to quantizer ${plugin.name}`);
    given.damp = numberOption(values, 'damp', 0.01, { min: 0 });
  }
  const merged = { ...own, ...given };
  return (plugin.validate ? plugin.validate(merged) : merged) as QuantizeGrid & Record<string, unknown>;
}

/** The model folder's config.json (or a training run's newest checkpoint's), for the tokenizer and positions. */
function modelConfig(dir: string): { hf: JsonObject; folder: string } | undefined {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) return undefined;
  try {
    return { hf: JSON.parse(readFileSync(file, 'utf8')) as JsonObject, folder: dir };
  } catch {
    return undefined;
  }
}

/** `yuan quantize`: a checkpoint's linears to 8 or 4 bits with RTN or GPTQ, written in the Hugging Face GPTQ layout. */
export const quantizeCommand: Command = {
  path: ['quantize'],
  summary:
    "quantize a checkpoint's linears to 8 or 4 bits (rtn, gptq with calibration data) in the Hugging Face GPTQ layout",
  usage:
    'yuan quantize --model DIR --method rtn|gptq --out DIR [--bits 8|4] [--group 128|--group=-1] [--sym] [--act-order] [--damp 0.01] [--float-convs]\n' +
    '  [--calibration FILE.txt|DATA_DIR [--samples 256] [--seq 512] [--seed 0] [--batch 8] [--tokenizer FILE.model|bytes]]\n' +
    '  [--option KEY=VALUE ...] [--plugin PKG|PATH ...] [--backend NAME] [--json]\n' +
    '  --bits default 4, --group default 128 input columns per scale and zero point (-1 or channel: one per output row);\n' +
    '  --sym: zero point 2^(bits-1) instead of per-group min/max; --act-order, --damp: gptq only (desc_act, dampening λ);\n' +
    "  --calibration (gptq): a text file (tokenized with --tokenizer, else the model's own) or a `yuan data prepare` folder\n" +
    "  (or Megatron PREFIX): --samples windows of --seq tokens (at most the model's positions) drawn with --seed;\n" +
    "  LFA's convolutions are quantized too (packed as [out, in·K] matrices); --float-convs keeps them float, the strict\n" +
    '  GPTQ layout of linears only',
  options: {
    model: { type: 'string' },
    method: { type: 'string' },
    out: { type: 'string' },
    bits: { type: 'string' },
    group: { type: 'string' },
    sym: { type: 'boolean' },
    'act-order': { type: 'boolean' },
    'float-convs': { type: 'boolean' },
    damp: { type: 'string' },
    calibration: { type: 'string' },
    samples: { type: 'string' },
    seq: { type: 'string' },
    seed: { type: 'string' },
    batch: { type: 'string' },
    tokenizer: { type: 'string' },
    option: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    ...PLUGIN_OPTION,
    ...BACKEND_OPTION,
  },
  async run(values, _pos, io) {
    const modelFlag = requireString(values, 'model', quantizeCommand);
    if (values.method === undefined)
      throw new YuanError('usage', `missing --method (rtn, gptq)\nusage: ${quantizeCommand.usage}`);
    const out = requireString(values, 'out', quantizeCommand);
    const registry = await loadRegistry(values);
    const quantizer = registry.get('quantizer', values.method as string) as QuantizerPlugin;
    const options = quantizerOptions(quantizer, values);
    const samples = numberOption(values, 'samples', CALIBRATION_DEFAULTS.samples, { int: true, min: 1 });
    const seed = numberOption(values, 'seed', CALIBRATION_DEFAULTS.seed, { int: true, min: 0 });
    const batch = numberOption(values, 'batch', CALIBRATION_DEFAULTS.batch, { int: true, min: 1 });
    const seqFlag = values.seq === undefined ? undefined : numberOption(values, 'seq', 0, { int: true, min: 2 });
    if (!quantizer.calibrated) {
      const given = FLAGS_OF_CALIBRATION.filter((f) => values[f] !== undefined);
      if (given.length)
        throw new YuanError('usage', `--${given[0]} is calibration data; quantizer ${quantizer.name} uses none`);
    } else if (values.calibration === undefined) {
      throw new YuanError(
        'usage',
        `quantizer ${quantizer.name} needs calibration data: give --calibration FILE.txt|DATA_DIR`,
      );
    }
    const { attentionLookup, resolveModelDir } = await import('@yuan/model');
    const { calibrationWindows, quantizeCheckpoint } = await import('@yuan/quantize');
    const { initBackend } = await import('@yuan/tensor');
    if (!existsSync(modelFlag)) throw new YuanError('checkpoint', `model folder not found: ${modelFlag}`);
    const source = resolveModelDir(modelFlag);
    const cfg = modelConfig(source);
    await initBackend(values.backend as string | undefined);

    let calibration: Int32Array[] | undefined;
    let calibrationInfo: JsonObject | undefined;
    if (quantizer.calibrated) {
      const file = values.calibration as string;
      const maxPositions = Number(
        cfg?.hf.max_position_embeddings ?? cfg?.hf.model_max_length ?? CALIBRATION_DEFAULTS.seq,
      );
      const seq = seqFlag ?? Math.min(CALIBRATION_DEFAULTS.seq, maxPositions);
      const packed =
        (existsSync(file) && statSync(file).isDirectory()) || (!existsSync(file) && existsSync(`${file}.idx`));
      let tokenizer: Tokenizer | undefined;
      if (!packed) {
        // --tokenizer, else the one the checkpoint names (bytes, or a file), else a tokenizer.model beside the weights
        const ref = (cfg?.hf.yuan as { tokenizer?: { name: string; path?: string } } | undefined)?.tokenizer;
        const beside = path.join(source, 'tokenizer.model');
        const spec =
          (values.tokenizer as string | undefined) ??
          (ref && (ref.name === 'bytes' || ref.path) ? ref : existsSync(beside) ? beside : undefined);
        if (spec !== undefined) tokenizer = await openRegisteredTokenizer(registry, spec);
      }
      calibration = await calibrationWindows(file, tokenizer, { samples, seqLength: seq, seed });
      calibrationInfo = {
        source: path.resolve(file),
        samples,
        seqLength: seq,
        seed,
        ...(tokenizer ? { tokenizer: tokenizer.name } : {}),
      };
    }

    let progress: Progress | undefined;
    const summary = await quantizeCheckpoint({
      model: source,
      out,
      quantizer,
      options,
      lookup: attentionLookup(registry, BUILTIN_SOURCES),
      calibration,
      calibrationInfo,
      batchSize: batch,
      floatConvs: values['float-convs'] === true,
      onProgress: (p) => {
        progress ??= new Progress(io, p.total, p.total / p.layers);
        progress.update(
          p.done,
          `layer ${p.layer + 1}/${p.layers} ${p.name.replace(/^model\.layers\.\d+\./, '')} ${p.seconds.toFixed(1)} s`,
        );
      },
    });
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const grid = `${options.bits}-bit, group ${options.groupSize === -1 ? 'per channel' : options.groupSize}${options.sym ? ', symmetric' : ''}${(options as { actOrder?: boolean }).actOrder ? ', act-order' : ''}`;
    io.out(
      values.json
        ? JSON.stringify({ ...summary, options })
        : `quantized ${summary.linears} linears (${summary.quantizedParameters.toLocaleString('en-US')} parameters; ${summary.floatParameters.toLocaleString('en-US')} stay float) with ${summary.method} ${grid} in ${summary.seconds.toFixed(1)} s: model.safetensors ${mb(summary.bytes)} MB (float32: ${mb(4 * (summary.quantizedParameters + summary.floatParameters))} MB); output in ${out}`,
    );
  },
};
