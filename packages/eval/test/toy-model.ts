import type { GenerationRequest, ModelAdapter } from '@yuan/core';
import type { ServedCompletion, ServedModel } from '../src/index.js';

/**
 * TEST DOUBLE, not a model: a deterministic text function standing in for a served model so the server, the endpoint
 * adapter and the evaluation plumbing can be tested without the model package. Its "completion" of a prompt is
 * ` The answer is L.` where L is the prompt's length mod 97, cut to `maxNewTokens` words and at stop strings.
 */
export class ToyServedModel implements ServedModel {
  readonly modelName = 'toy-test-double';
  readonly maxNewTokens = 1024;
  calls = 0;
  failNext = 0;

  private complete(req: GenerationRequest, sample: number): ServedCompletion {
    const words = ` The answer is ${(req.prompt.length + sample) % 97}.`.split(/(?= )/);
    let text = words.slice(0, req.maxNewTokens).join('');
    let finishReason: ServedCompletion['finishReason'] = words.length > req.maxNewTokens ? 'length' : 'stop';
    for (const s of req.stop ?? []) {
      const at = text.indexOf(s);
      if (at >= 0) {
        text = text.slice(0, at);
        finishReason = 'stop';
      }
    }
    return { text, finishReason, promptTokens: req.prompt.length, completionTokens: Math.min(words.length, req.maxNewTokens) };
  }

  async generate(req: GenerationRequest): Promise<ServedCompletion[]> {
    this.calls++;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('toy failure');
    }
    const temperatureShift = (req.temperature ?? 0) > 0 ? 1 : 0;
    return Array.from({ length: req.n ?? 1 }, (_, i) => this.complete(req, i * temperatureShift));
  }

  async generateStream(req: GenerationRequest, onText: (d: string) => void, signal: AbortSignal): Promise<ServedCompletion> {
    this.calls++;
    const done = this.complete(req, 0);
    for (const piece of done.text.split(/(?= )/)) {
      if (signal.aborted) break;
      onText(piece);
      await new Promise((r) => setTimeout(r, 1));
    }
    return done;
  }
}

/** TEST DOUBLE: a ModelAdapter whose log-likelihoods prefer a fixed continuation, and whose token losses are uniform over bytes. */
export function toyAdapter(prefer: (context: string) => string): ModelAdapter {
  return {
    name: 'toy-adapter',
    generate: async (req) => Array.from({ length: req.n ?? 1 }, () => ''),
    logLikelihood: async (context, continuation) => (continuation === prefer(context) ? -1 : -5 - continuation.length),
    tokenLosses: async (text) => ({ nll: (Buffer.byteLength(text) - 1) * Math.log(256), tokens: Buffer.byteLength(text) - 1 }),
  };
}
