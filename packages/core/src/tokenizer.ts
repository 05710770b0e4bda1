import path from 'node:path';
import { YuanError } from './errors.js';
import type { PluginBase, PluginRegistry } from './registry.js';

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
  /** File extensions this tokenizer reads (e.g. `['.model']`), so `--tokenizer FILE` can pick it. */
  readonly fileExtensions?: readonly string[];
  load(options: TokenizerOptions): Promise<Tokenizer>;
}

/**
 * The registered tokenizer and options `spec` names: a registered tokenizer name (`bytes`), `NAME:PATH`, a file whose
 * extension a tokenizer plugin claims (`tokenizer.model` → `sentencepiece`), or a config's `{name, path}`; paths are
 * made absolute. What a worker thread needs to open the same tokenizer from its own registry.
 * Errors: an unknown name or an unclaimed file extension, naming what is registered.
 */
export function tokenizerRef(
  registry: PluginRegistry,
  spec: string | { name: string; path?: string },
): { name: string; path?: string } {
  if (typeof spec !== 'string') {
    registry.get('tokenizer', spec.name);
    return spec.path ? { name: spec.name, path: path.resolve(spec.path) } : { name: spec.name };
  }
  if (registry.has('tokenizer', spec)) return { name: spec };
  const colon = /^([A-Za-z][\w-]*):(.+)$/.exec(spec);
  if (colon && registry.has('tokenizer', colon[1])) return { name: colon[1], path: path.resolve(colon[2]) };
  const ext = path.extname(spec).toLowerCase();
  const claim = registry.list('tokenizer').find((p) => (p as TokenizerPlugin).fileExtensions?.includes(ext));
  if (!claim) {
    throw new YuanError(
      'usage',
      `--tokenizer ${JSON.stringify(spec)} is neither a registered tokenizer (${registry.names('tokenizer').join(', ')}) nor a file type one reads`,
    );
  }
  return { name: claim.name, path: path.resolve(spec) };
}

/** Opens the tokenizer `spec` names (see `tokenizerRef`) through the registry. Errors: those of `tokenizerRef` and of the plugin's `load`. */
export async function openTokenizer(
  registry: PluginRegistry,
  spec: string | { name: string; path?: string },
): Promise<Tokenizer> {
  const ref = tokenizerRef(registry, spec);
  return registry.get('tokenizer', ref.name).load(ref.path ? { path: ref.path } : {});
}
