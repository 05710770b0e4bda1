import { YuanError, type GenerationRequest, type ModelAdapter, type Tokenizer } from '@yuan/core';
import { tf } from '@yuan/tensor';
import { generateTokens } from './generate.js';
import type { YuanModel } from './model.js';
import { CompletionText } from '@yuan/tokenizer';

/** Token ids of `continuation` after `context`, tokenized together so the boundary is what the model would see. */
function continuationIds(
  tokenizer: Tokenizer,
  context: string,
  continuation: string,
): { context: number[]; continuation: number[] } {
  const whole = tokenizer.encode(context + continuation);
  const ctx = tokenizer.encode(context);
  const shared = ctx.every((id, i) => whole[i] === id) ? ctx.length : 0;
  const cont = shared ? whole.slice(shared) : tokenizer.encode(continuation);
  return { context: ctx, continuation: cont };
}

/** How a completion ended and how many tokens it took. */
export interface CompletionInfo {
  /** `stop`: `<eod>` or a stop string ended it; `length`: max tokens (or the context) ran out. */
  finishReason: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
}

/** A local model behind the `ModelAdapter` interface: text in, text out, with stop strings and log-likelihoods. */
export class LocalModelAdapter implements ModelAdapter {
  constructor(
    readonly model: YuanModel,
    readonly tokenizer: Tokenizer,
    readonly name = `local:${model.config.preset}`,
  ) {}

  /**
   * Streams the new text of one completion piece by piece (completion `index` samples with seed + index); stops at
   * `<eod>`, a stop string, max tokens or when `signal` aborts, and returns how it ended. The text is exactly the new
   * tokens decoded in context and cut before the first stop string (see CompletionText).
   */
  async *stream(request: GenerationRequest, index = 0, signal?: AbortSignal): AsyncGenerator<string, CompletionInfo> {
    const prompt = this.tokenizer.encode(request.prompt);
    const room = this.model.config.model.maxPositions - prompt.length;
    if (room <= 0)
      throw new YuanError(
        'input',
        `prompt of ${prompt.length} tokens leaves no room below maxPositions ${this.model.config.model.maxPositions}`,
      );
    const text = new CompletionText(this.tokenizer, prompt, request.stop ?? []);
    const eod = this.tokenizer.special.eod;
    const info = (finishReason: 'stop' | 'length'): CompletionInfo => ({
      finishReason,
      promptTokens: prompt.length,
      completionTokens: text.tokens,
    });
    let ended: 'stop' | 'length' = 'length';
    for (const id of generateTokens(this.model, prompt, {
      maxNewTokens: Math.min(request.maxNewTokens, room),
      temperature: request.temperature ?? 0,
      topK: request.topK ?? 0,
      topP: request.topP ?? 1,
      seed: (request.seed ?? 0) + index,
      stopIds: [eod],
    })) {
      if (id === eod) {
        ended = 'stop';
        break;
      }
      const step = text.push(id);
      if (step.delta) yield step.delta;
      if (step.stopped) return info('stop');
      await new Promise((r) => setImmediate(r)); // let a server answer other requests between tokens
      if (signal?.aborted) return info('stop');
    }
    const last = text.finish();
    if (last.delta) yield last.delta;
    return info(last.stopped ? 'stop' : ended);
  }

  /** `n` completions of the prompt (seeds seed, seed+1, ...). */
  async generate(request: GenerationRequest): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < (request.n ?? 1); i++) {
      let text = '';
      for await (const piece of this.stream(request, i)) text += piece;
      out.push(text);
    }
    return out;
  }

  /** Sum of log-probabilities of the continuation's tokens given the context (the context is cut from the left to fit). */
  async logLikelihood(context: string, continuation: string): Promise<number> {
    const parts = continuationIds(this.tokenizer, context, continuation);
    if (parts.continuation.length === 0) return 0;
    const max = this.model.config.model.maxPositions;
    const all = [...parts.context, ...parts.continuation].slice(-(max + 1));
    const input = all.slice(0, -1);
    const n = parts.continuation.length;
    return tf.tidy(() => {
      const ids = tf.tensor2d([input], [1, input.length], 'int32');
      const logp = tf.logSoftmax(this.model.forward(ids).logits.squeeze([0]) as tf.Tensor2D);
      const rows = logp.slice([input.length - n, 0], [n, -1]);
      const targets = tf.tensor1d(all.slice(-n), 'int32');
      return tf.sum(tf.mul(rows, tf.oneHot(targets, rows.shape[1]))).dataSync()[0];
    });
  }

  /** Summed next-token negative log-likelihood (nats) of a text and the tokens it covers, in windows of maxPositions tokens. */
  async tokenLosses(text: string): Promise<{ nll: number; tokens: number }> {
    const ids = this.tokenizer.encode(text);
    const window = this.model.config.model.maxPositions;
    let nll = 0;
    let tokens = 0;
    for (let start = 0; start + 1 < ids.length; start += window) {
      const chunk = ids.slice(start, start + window + 1);
      const input = chunk.slice(0, -1);
      nll += tf.tidy(() => {
        const logits = this.model
          .forward(tf.tensor2d([input], [1, input.length], 'int32'))
          .logits.squeeze([0]) as tf.Tensor2D;
        const logp = tf.logSoftmax(logits);
        return -tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(chunk.slice(1), 'int32'), logp.shape[1]))).dataSync()[0];
      });
      tokens += input.length;
    }
    return { nll, tokens };
  }

  /** Frees the model. */
  async close(): Promise<void> {
    this.model.dispose();
  }
}
