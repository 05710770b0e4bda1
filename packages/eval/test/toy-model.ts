import type { ModelAdapter } from '@yuan/core';
import type { ServedCompletion, ServedListener, ServedModel, ServedRequest } from '@yuan/serve';

/** A content error of the toy (the server answers 400 naming `param`). */
class ToyParamError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * TEST DOUBLE, not a model: a deterministic text function standing in for a served model so the server, the endpoint
 * adapter and the evaluation plumbing can be tested without a checkpoint. Its "completion" of a prompt is
 * ` The answer is L.` where L is the prompt's length mod 97, cut to `maxNewTokens` words and at stop strings.
 * Prompts of token ids count one character per id; a prompt over 1000 characters is refused (its "context").
 */
export class ToyServedModel implements ServedModel<ServedRequest> {
  readonly modelName = 'toy-test-double';
  readonly maxNewTokens = 1024;
  calls = 0;
  failNext = 0;

  private complete(req: ServedRequest, sample: number): ServedCompletion {
    const words = ` The answer is ${(req.prompt.length + sample) % 97}.`.split(/(?= )/);
    const max = req.maxNewTokens ?? 1000;
    let text = words.slice(0, max).join('');
    let finishReason: ServedCompletion['finishReason'] = words.length > max ? 'length' : 'stop';
    for (const s of req.stop ?? []) {
      const at = text.indexOf(s);
      if (at >= 0) {
        text = text.slice(0, at);
        finishReason = 'stop';
      }
    }
    return { text, finishReason, promptTokens: req.prompt.length, completionTokens: Math.min(words.length, max) };
  }

  prepare(req: ServedRequest, param: string): ServedRequest {
    if (req.prompt.length > 1000)
      throw new ToyParamError(param, `the prompt has ${req.prompt.length} tokens; the context is 1000`);
    if (req.logprobs !== undefined || req.echo) throw new ToyParamError('logprobs', 'the toy has no logprobs');
    return req;
  }

  async generate(
    req: ServedRequest,
    onText: ServedListener | undefined,
    signal: AbortSignal,
  ): Promise<ServedCompletion[]> {
    this.calls++;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('toy failure');
    }
    const temperatureShift = req.temperature > 0 ? 1 : 0;
    const out = Array.from({ length: req.n }, (_, i) => this.complete(req, i * temperatureShift));
    if (onText) {
      for (const [i, done] of out.entries()) {
        for (const piece of done.text.split(/(?= )/)) {
          if (signal.aborted) break;
          onText(i, piece, []);
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    }
    return out;
  }
}

/** TEST DOUBLE: a ModelAdapter whose log-likelihoods prefer a fixed continuation, and whose token losses are uniform over bytes. */
export function toyAdapter(prefer: (context: string) => string): ModelAdapter {
  return {
    name: 'toy-adapter',
    generate: async (req) => Array.from({ length: req.n ?? 1 }, () => ''),
    logLikelihood: async (context, continuation) => (continuation === prefer(context) ? -1 : -5 - continuation.length),
    tokenLosses: async (text) => ({
      nll: (Buffer.byteLength(text) - 1) * Math.log(256),
      tokens: Buffer.byteLength(text) - 1,
    }),
  };
}
