import { access, constants } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { openTokenizer, tokenizerRef, YuanError } from '@yuan/core';
import { prepareData, prepareWorkersForInput, type PrepareProgress } from '@yuan/data';
import { numberOption, type Command, type CommandIO } from '../command.js';
import { loadRegistry, PLUGIN_OPTION, pluginModuleFile } from '../context.js';

async function checkReadable(files: string[]): Promise<void> {
  if (files.length === 0) throw new YuanError('usage', `missing --input FILE\nusage: ${dataPrepare.usage}`);
  for (const f of files) {
    try {
      await access(f, constants.R_OK);
    } catch (e) {
      throw new YuanError('input', `cannot read input ${f} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
}

function progressLine(p: PrepareProgress): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : 0;
  return `${(100 * frac).toFixed(0).padStart(3)}% ${n(p.samples)} samples, ${n(p.tokens)} tokens, ${n(p.tokensPerSecond)} tokens/s, ${p.megabytesPerSecond.toFixed(1)} MB/s, ${p.seconds.toFixed(1)} s`;
}

function progressPrinter(io: CommandIO): (p: PrepareProgress) => void {
  let drawn = false;
  return (p) => {
    if (io.isTTY) {
      const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : 0;
      const filled = Math.round(frac * 24);
      io.err(`${drawn ? '\x1b[1A\x1b[2K' : ''}[${'#'.repeat(filled)}${'-'.repeat(24 - filled)}] ${progressLine(p)}`);
      drawn = true;
    } else if (!p.done) io.err(`data prepare: ${progressLine(p)}`);
  };
}

/** `yuan data prepare`: tokenizes text, JSONL or YUAN-format files into a packed data folder (+ Megatron .bin/.idx). */
export const dataPrepare: Command = {
  path: ['data', 'prepare'],
  summary:
    'tokenize text, .jsonl (text or prompt/answer) or YUAN-format lines into a packed folder with a train/valid split and Megatron .bin/.idx',
  usage:
    'yuan data prepare --input FILE [--input FILE ...] --tokenizer FILE.model|bytes --output DIR [--format auto|text|jsonl|yuan] [--valid-fraction 0.05] ' +
    '[--text-field text] [--workers N] [--no-megatron]',
  options: {
    input: { type: 'string', multiple: true },
    tokenizer: { type: 'string' },
    output: { type: 'string' },
    format: { type: 'string' },
    'valid-fraction': { type: 'string' },
    'text-field': { type: 'string' },
    workers: { type: 'string' },
    'no-megatron': { type: 'boolean' },
    ...PLUGIN_OPTION,
  },
  async run(values, positionals, io) {
    const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
    const output = values.output as string | undefined;
    if (!output) throw new YuanError('usage', `missing --output DIR\nusage: ${dataPrepare.usage}`);
    if (!values.tokenizer)
      throw new YuanError('usage', `missing --tokenizer (FILE.model or bytes)\nusage: ${dataPrepare.usage}`);
    const validFraction = numberOption(values, 'valid-fraction', 0.05, { min: 0 });
    if (validFraction >= 1) throw new YuanError('usage', `--valid-fraction ${validFraction} must be below 1`);
    const format = (values.format as string | undefined) ?? 'auto';
    if (!['auto', 'text', 'jsonl', 'yuan'].includes(format))
      throw new YuanError('usage', `--format "${format}" must be auto, text, jsonl or yuan`);
    // Without --workers: the cores, but one thread per 8 MB of input at most (a worker thread's start-up costs more
    // than it gains on small inputs).
    const workers =
      values.workers === undefined
        ? prepareWorkersForInput(inputs, availableParallelism())
        : numberOption(values, 'workers', 1, { int: true, min: 1 });
    await checkReadable(inputs);
    const registry = await loadRegistry(values);
    // the tokenizer plugin and file the spec names; worker threads open the same one from its module in their own registry
    const tokenizerSpec = tokenizerRef(registry, values.tokenizer as string);
    const tokenizer = await openTokenizer(registry, tokenizerSpec);
    const module = pluginModuleFile(registry, 'tokenizer', tokenizerSpec.name);
    const r = await prepareData({
      inputs,
      output,
      format: format as 'auto',
      textField: (values['text-field'] as string | undefined) ?? 'text',
      tokenizer,
      tokenizerSpec,
      plugins: module ? [module] : undefined,
      validFraction,
      workers,
      megatron: !values['no-megatron'],
      onProgress: progressPrinter(io),
    });
    const { index } = r;
    const { train, valid } = index.splits;
    io.out(
      `packed ${train.documents + valid.documents} documents (${index.sftPairs} prompt/answer pairs), ${train.tokens + valid.tokens} tokens into ${output}: ` +
        `train ${train.documents} documents / ${train.tokens} tokens, valid ${valid.documents} documents / ${valid.tokens} tokens`,
    );
    if (index.megatron)
      io.err(
        `Megatron indexed datasets: ${Object.values(index.megatron.prefixes)
          .map((p) => path.join(output, p!))
          .join(', ')} (train with --data PREFIX)`,
      );
  },
};
