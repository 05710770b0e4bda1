/**
 * One prompt of a request, as the server hands it to the served model. Defaults: greedy-free temperature 1 as in the
 * OpenAI API is decided by the server; here every field is explicit except `maxNewTokens` (undefined: up to the
 * context), `topK`, `seed`, `logprobs` and `echo`.
 */
export interface ServedRequest {
  /** Text, or token ids of the model's vocabulary. */
  prompt: string | number[];
  maxNewTokens?: number;
  temperature: number;
  topP: number;
  topK?: number;
  seed?: number;
  n: number;
  /** Strings that end a completion; the text is cut before the first occurrence. */
  stop: string[];
  /** Number of top alternatives per token (0..20) when token log-probabilities are asked for. */
  logprobs?: number;
  /** Return the prompt (and, with logprobs, its tokens' log-probabilities) before the completion. */
  echo?: boolean;
  /** Keep generating after the end-of-document token (vLLM's `ignore_eos`; for benchmarks). */
  ignoreEod?: boolean;
}

/** The log-probability of one token: its text, its logprob (null for the first prompt token) and the top tokens. */
export interface ServedLogprob {
  token: string;
  logprob: number | null;
  top: [string, number][] | null;
  /** Character offset of the token in the returned text. */
  offset: number;
}

/** One finished completion of a served model. */
export interface ServedCompletion {
  text: string;
  /** `stop`: a stop string or the end-of-document token ended it; `length`: max tokens was reached. */
  finishReason: 'stop' | 'length';
  promptTokens?: number;
  completionTokens?: number;
  /** With `logprobs`: one entry per token (the prompt's first with `echo`). */
  logprobs?: ServedLogprob[];
}

/** Streaming callback: choice `index` (0..n−1) has new final text and the logprobs of the tokens behind it. */
export type ServedListener = (index: number, delta: string, logprobs: ServedLogprob[]) => void;

/** One chat message of `/v1/chat/completions`. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * What `createOpenAIServer` serves. `prepare` checks (and may tokenize) one prompt before anything is answered: it
 * throws an error with a string `param` property for content the model cannot serve (the server answers 400 naming
 * that parameter; any other error is a 500). `generate` returns the `n` choices of a prepared prompt, calling
 * `onText` with text as it becomes final when streaming, and stops early when `signal` aborts. Calls may overlap: a
 * batching model generates them together.
 */
export interface ServedModel<Prepared = unknown> {
  readonly modelName: string;
  /** Largest `max_tokens` a request may ask for (default 2048). */
  readonly maxNewTokens?: number;
  prepare(req: ServedRequest, param: string): Prepared;
  generate(prepared: Prepared, onText: ServedListener | undefined, signal: AbortSignal): Promise<ServedCompletion[]>;
  /** The prompt for a chat; default: `role: content` lines then `assistant:`. */
  formatChat?(messages: ChatMessage[]): string;
  /** The model's tokenizer, for vLLM-style `/tokenize`, `/detokenize` and `/tokenizer_info` (lm-eval's remote tokenizer). */
  tokenizer?: {
    encode(text: string): number[];
    decode(ids: readonly number[]): string;
    readonly vocabSize: number;
    /** The end-of-document token's text (e.g. `<eod>`). */
    readonly eosToken: string;
    readonly contextLength: number;
  };
}

/** The default chat prompt: one `role: content` line per message, then `assistant:`. */
export function defaultChatPrompt(messages: ChatMessage[]): string {
  return `${messages.map((m) => `${m.role}: ${m.content}`).join('\n')}\nassistant:`;
}
