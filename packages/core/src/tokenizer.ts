import type { PluginBase } from './registry.js';

/** Ids of the special tokens a tokenizer knows; `eod` ends a document. */
export interface SpecialIds {
  eod: number;
  sep?: number;
  pad?: number;
}

/** Text ↔ ids. Special-token strings such as `<eod>` and `<sep>` in the text encode as single ids. */
export interface Tokenizer {
  readonly name: string;
  /** One more than the largest id `encode` can produce. */
  readonly vocabSize: number;
  readonly special: SpecialIds;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** The piece string of each id (for display). */
  pieces(ids: readonly number[]): string[];
}

/** Options a tokenizer plugin is opened with. */
export interface TokenizerOptions {
  /** Path of the tokenizer file, for tokenizers that read one. */
  path?: string;
}

/** A tokenizer kind (`bytes`, `sentencepiece`, ...). */
export interface TokenizerPlugin extends PluginBase<'tokenizer', TokenizerOptions> {
  load(options: TokenizerOptions): Promise<Tokenizer>;
}
