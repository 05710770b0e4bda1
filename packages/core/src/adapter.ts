import type { PluginBase, PluginRegistry } from './registry.js';

/** One text-generation request to a model adapter. Defaults: temperature 0 (greedy), n 1. */
export interface GenerationRequest {
  prompt: string;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Strings that end a completion (not included in it). */
  stop?: string[];
  seed?: number;
  /** Number of completions to sample. */
  n?: number;
}

/** A model behind a uniform interface, so evaluators never depend on where it runs. */
export interface ModelAdapter {
  readonly name: string;
  /** Returns `n` completions of the prompt (the new text only). */
  generate(request: GenerationRequest): Promise<string[]>;
  /** Sum of log-probabilities of `continuation` given `context`, where the model exposes them. */
  logLikelihood?(context: string, continuation: string): Promise<number>;
  /**
   * Summed negative log-likelihood (nats) of `text` under the model and the number of tokens it was summed over (every
   * token after the first), for perplexity. Texts longer than the context are scored in windows by the adapter.
   */
  tokenLosses?(text: string): Promise<{ nll: number; tokens: number }>;
  close?(): Promise<void>;
}

/** A kind of model adapter (a local checkpoint, an OpenAI-compatible endpoint, ...). */
export interface ModelAdapterPlugin<Options = Record<string, unknown>> extends PluginBase<'model-adapter', Options> {
  /**
   * Opens the model; `context.registry` resolves the plugins it needs (attention, tokenizer); `context.note` receives
   * one-line notes for the user (e.g. the checkpoint tensors that were ignored), which a CLI prints to stderr.
   */
  open(options: Options, context?: { registry?: PluginRegistry; note?: (line: string) => void }): Promise<ModelAdapter>;
}
