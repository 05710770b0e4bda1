import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError,
  NotFoundError,
  YuanError,
  type EvalContext,
  type EvalResult,
  type EvaluatorPlugin,
} from '@yuan/core';
import { checkOptions } from './options.js';

/** Options of `perplexity`. Defaults: no file (required), chunks of at most 8192 characters cut at line ends. */
export interface PerplexityOptions {
  file: string;
  chunkChars: number;
}

const DEFAULTS: PerplexityOptions = { file: '', chunkChars: 8192 };

/** Splits text into chunks of at most `max` characters, cutting after a newline where one exists. */
export function chunkText(text: string, max: number): string[] {
  const chunks: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + max);
    if (end < text.length) {
      const nl = text.lastIndexOf('\n', end - 1);
      if (nl >= at) end = nl + 1;
    }
    chunks.push(text.slice(at, end));
    at = end;
  }
  return chunks;
}

function validate(options: Record<string, unknown>): PerplexityOptions {
  const o = checkOptions('perplexity', DEFAULTS, options);
  if (!o.file) throw new ConfigError('perplexity: give the text file (--file FILE)');
  if (!Number.isInteger(o.chunkChars) || o.chunkChars < 1)
    throw new ConfigError(`perplexity: chunkChars ${o.chunkChars}: expected a positive integer`);
  return o;
}

async function evaluate(ctx: EvalContext, raw: PerplexityOptions): Promise<EvalResult> {
  const options = validate(raw as unknown as Record<string, unknown>);
  const model = ctx.model;
  if (ctx.completions || !model)
    throw new YuanError('usage', 'perplexity scores a model on a text: give --model (it cannot use --samples)');
  if (!model.tokenLosses && !model.logLikelihood) {
    throw new YuanError(
      'usage',
      `perplexity: ${model.name} exposes no token losses or log-likelihoods (an endpoint cannot be scored this way)`,
    );
  }
  const file = path.resolve(options.file);
  if (!existsSync(file)) throw new NotFoundError(`perplexity: file not found: ${file}`);
  let chunks = chunkText(readFileSync(file, 'utf8'), options.chunkChars).filter((c) => c.trim() !== '');
  if (ctx.settings.limit !== undefined) chunks = chunks.slice(0, ctx.settings.limit);
  if (chunks.length === 0) throw new YuanError('input', `perplexity: ${file} has no text`);
  let nll = 0;
  let tokens = 0;
  let bytes = 0;
  for (const [i, chunk] of chunks.entries()) {
    const b = Buffer.byteLength(chunk);
    if (model.tokenLosses) {
      const r = await model.tokenLosses(chunk);
      nll += r.nll;
      tokens += r.tokens;
      ctx.log({ chunk: i, chars: chunk.length, bytes: b, nll: r.nll, tokens: r.tokens });
    } else {
      const ll = await model.logLikelihood!('', chunk);
      nll -= ll;
      ctx.log({ chunk: i, chars: chunk.length, bytes: b, nll: -ll });
    }
    bytes += b;
    ctx.progress?.(i + 1, chunks.length);
  }
  const metrics: Record<string, number> = { bits_per_byte: nll / Math.LN2 / bytes };
  if (tokens > 0) {
    metrics.loss = nll / tokens;
    metrics.perplexity = Math.exp(nll / tokens);
  }
  return { task: 'perplexity', metrics, count: chunks.length, details: { file, tokens, bytes } };
}

/** Perplexity: mean token loss (nats), perplexity and bits per byte of a model on a text file. */
export const perplexityEvaluator: EvaluatorPlugin<PerplexityOptions> = {
  kind: 'evaluator',
  name: 'perplexity',
  description: 'loss, perplexity and bits per byte of a model on a text file',
  defaults: DEFAULTS,
  flags: {
    file: { option: 'file', type: 'string', help: 'the text file to score' },
    'chunk-chars': { option: 'chunkChars', type: 'int', help: 'characters per scored chunk' },
  },
  validate,
  evaluate,
};
