import type { ModelAdapter } from '@yuan/core';
import type { ServedCompletion, ServedModel, ServedRequest } from './served-model.js';

/** A content error of a request (HTTP 400 naming `param`). */
class ParamError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Serves any ModelAdapter (e.g. a remote endpoint) when nothing finer is available: text prompts only, no logprobs or
 * echo (400), completions reported with finish reason `stop` and no token counts, streams carry each whole
 * completion as one chunk.
 */
export function servedFromAdapter(adapter: ModelAdapter, modelName: string = adapter.name): ServedModel<ServedRequest> {
  return {
    modelName,
    prepare(req, param) {
      if (typeof req.prompt !== 'string') throw new ParamError(param, 'this model takes text prompts only');
      if (req.logprobs !== undefined) throw new ParamError('logprobs', 'logprobs are not available from this model');
      if (req.echo) throw new ParamError('echo', 'echo is not available from this model');
      return req;
    },
    async generate(req, onText): Promise<ServedCompletion[]> {
      const texts = await adapter.generate({
        ...req,
        prompt: req.prompt as string,
        maxNewTokens: req.maxNewTokens ?? 256,
      });
      texts.forEach((t, i) => onText?.(i, t, []));
      return texts.map((text) => ({ text, finishReason: 'stop' as const }));
    },
  };
}
