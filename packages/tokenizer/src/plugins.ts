import { ConfigError, YuanError, type TokenizerOptions, type TokenizerPlugin } from '@yuan/core';
import { ByteTokenizer } from './bytes.js';
import { loadSentencePiece } from './sentencepiece.js';

/** Checks that `path`, when given, is a non-empty string. */
function validatePath(plugin: string, options: Record<string, unknown>): TokenizerOptions {
  const path = options.path;
  if (path === undefined || path === null) return {};
  if (typeof path !== 'string' || path.length === 0) {
    throw new ConfigError(
      `tokenizer '${plugin}': options.path must be a non-empty string, got ${JSON.stringify(path)}`,
    );
  }
  return { path };
}

/** The byte-level tokenizer plugin (`bytes`) and the SentencePiece `.model` plugin (`sentencepiece`). */
export const tokenizerPlugins: TokenizerPlugin[] = [
  {
    kind: 'tokenizer',
    name: 'bytes',
    description:
      'UTF-8 bytes as ids 0..255 plus 8 special tokens (<eod>=256, <sep>=257, <pad>=258, FIM, mask, predict)',
    defaults: {},
    validate: (options) => validatePath('bytes', options),
    async load() {
      return new ByteTokenizer();
    },
  },
  {
    kind: 'tokenizer',
    name: 'sentencepiece',
    description: 'A SentencePiece BPE .model file (e.g. YUAN 2.0 tokenizer.model) with the YUAN added tokens',
    defaults: {},
    fileExtensions: ['.model'],
    validate: (options) => validatePath('sentencepiece', options),
    async load(options) {
      if (!options.path) {
        throw new YuanError(
          'tokenizer',
          "tokenizer 'sentencepiece' needs a path: set tokenizer.path to a SentencePiece .model file (e.g. tokenizer.model)",
        );
      }
      return loadSentencePiece(options.path);
    },
  },
];
