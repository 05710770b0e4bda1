import type { GenerationRequest, ModelAdapter } from '@yuan/core';
import type { ServedCompletion, ServedModel } from './served-model.js';

/**
 * Serves any ModelAdapter (e.g. a local model the CLI opened) when nothing finer is available: completions are
 * reported with finish reason `stop` and no token counts, and streams carry each whole completion as one chunk.
 */
export function servedFromAdapter(adapter: ModelAdapter, modelName: string = adapter.name): ServedModel {
  return {
    modelName,
    async generate(req: GenerationRequest): Promise<ServedCompletion[]> {
      return (await adapter.generate(req)).map((text) => ({ text, finishReason: 'stop' as const }));
    },
  };
}
