import { Rng, YuanError } from '@yuan/core';
import { tf } from '@yuan/tensor';
import { disposeCache, type ModelCache, type YuanModel } from './model.js';
import { sampleToken } from './sampling.js';

/** Generation settings. Defaults: greedy, no top-k/top-p filtering, seed 0, KV/LF cache on, no stop ids. */
export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Ids that end generation; the stop id itself is included in the output. */
  stopIds?: readonly number[];
  /** Use the KV and LF caches (default) or recompute the whole sequence every step. */
  useCache?: boolean;
}

function checkOptions(o: GenerateOptions): void {
  const bad = (what: string) => {
    throw new YuanError('input', what);
  };
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    bad(`max new tokens must be a non-negative integer, got ${o.maxNewTokens}`);
  if (o.temperature !== undefined && !(o.temperature >= 0)) bad(`temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0))
    bad(`top-k must be a non-negative integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Yields new token ids one at a time for a single prompt; stops after maxNewTokens or a stop id. */
export function* generateTokens(
  model: YuanModel,
  prompt: readonly number[],
  options: GenerateOptions,
): Generator<number> {
  checkOptions(options);
  if (prompt.length === 0) throw new YuanError('input', 'the prompt is empty: give at least one token');
  model.checkIds(prompt);
  const max = model.config.model.maxPositions;
  if (prompt.length + options.maxNewTokens > max) {
    throw new YuanError(
      'input',
      `prompt (${prompt.length} tokens) + max new tokens (${options.maxNewTokens}) exceeds maxPositions ${max}`,
    );
  }
  const sampling = { temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1 };
  const rng = new Rng(options.seed ?? 0);
  const stop = new Set(options.stopIds ?? []);
  const useCache = options.useCache ?? true;
  const decoder = useCache ? model.decoder : undefined;
  if (decoder) {
    // the native decoder over stored weights: the prompt in one call, then one token per call
    const sequence = decoder.newSequence(prompt.length + options.maxNewTokens);
    let tokens: number[] = [...prompt];
    for (let i = 0; i < options.maxNewTokens; i++) {
      const next = sampleToken(decoder.forward([{ sequence, tokens }]), sampling, rng);
      yield next;
      if (stop.has(next)) return;
      tokens = [next];
    }
    return;
  }
  const seq = [...prompt];
  let cache: ModelCache | undefined;
  try {
    for (let i = 0; i < options.maxNewTokens; i++) {
      const input = useCache && cache ? seq.slice(-1) : seq;
      const ids = tf.tensor2d([input], [1, input.length], 'int32');
      const r = model.forward(ids, { cache: useCache ? cache : undefined, useCache, lastOnly: true });
      ids.dispose();
      disposeCache(cache, r.cache);
      cache = r.cache;
      const row = r.logits.dataSync() as Float32Array;
      r.logits.dispose();
      const next = sampleToken(row, sampling, rng);
      seq.push(next);
      yield next;
      if (stop.has(next)) return;
    }
  } finally {
    disposeCache(cache);
  }
}

/** The new token ids for a single prompt (see `generateTokens`). */
export function generate(model: YuanModel, prompt: readonly number[], options: GenerateOptions): number[] {
  return [...generateTokens(model, prompt, options)];
}
