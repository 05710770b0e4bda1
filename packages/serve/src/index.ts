/**
 * @yuan/serve: serving a model — the continuous-batching `ServingEngine` (requests join and leave a running batch, KV
 * and LFA caches per row, n choices, stop strings, logprobs) and an OpenAI-compatible HTTP server (`/v1/completions`,
 * `/v1/chat/completions`, `/v1/models`, streaming) for any `ServedModel`: the engine, or any `ModelAdapter` of `@yuan/core`.
 */
export {
  ServingEngine,
  ServeInputError,
  tokenString,
  type ServeRequest,
  type PreparedRequest,
  type ServeResult,
  type ServeChoice,
  type TokenLogprob,
  type ServeListener,
  type ServingEngineOptions,
} from './engine.js';
export { createOpenAIServer, type OpenAIServerOptions } from './openai-server.js';
export { servedFromAdapter } from './adapter-served.js';
export {
  defaultChatPrompt,
  type ServedModel,
  type ServedCompletion,
  type ServedRequest,
  type ServedLogprob,
  type ServedListener,
  type ChatMessage,
} from './served-model.js';
export { DEFAULT_REQUEST_LIMITS, type RequestLimits } from './validate.js';
