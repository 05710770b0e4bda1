import type { GenerationRequest } from '@yuan/core';

/** One finished completion of a served model. */
export interface ServedCompletion {
  text: string;
  /** `stop`: a stop string or the end-of-document token ended it; `length`: max tokens was reached. */
  finishReason: 'stop' | 'length';
  promptTokens?: number;
  completionTokens?: number;
}

/** One chat message of `/v1/chat/completions`. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * What `createOpenAIServer` serves: a model that generates text. `generate` must honour `maxNewTokens`, `stop`
 * (strings, cut before them), `temperature` (0 = greedy), `topP`, `seed` and `n`; `generateStream` (optional; n is
 * always 1) calls `onText` with each new piece of text and stops early when `signal` aborts. Without it, streams carry
 * the whole text in one chunk. Calls are never concurrent: the server queues them.
 */
export interface ServedModel {
  readonly modelName: string;
  /** Largest `max_tokens` a request may ask for (default 2048). */
  readonly maxNewTokens?: number;
  generate(req: GenerationRequest, signal: AbortSignal): Promise<ServedCompletion[]>;
  generateStream?(req: GenerationRequest, onText: (delta: string) => void, signal: AbortSignal): Promise<ServedCompletion>;
  /** The prompt for a chat; default: `role: content` lines then `assistant:`. */
  formatChat?(messages: ChatMessage[]): string;
}

/** The default chat prompt: one `role: content` line per message, then `assistant:`. */
export function defaultChatPrompt(messages: ChatMessage[]): string {
  return `${messages.map((m) => `${m.role}: ${m.content}`).join('\n')}\nassistant:`;
}
