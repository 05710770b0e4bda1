/**
 * @yuan/tokenizer: YUAN's tokenizers without tensors — SentencePiece BPE `.model` files (read, encode, decode, write)
 * with YUAN's added tokens, a byte-level tokenizer, their plugins (`sentencepiece`, `bytes`), and `CompletionText`,
 * the streaming decoder that turns generated ids into final text with stop strings. Depends on `@yuan/core` only.
 */
export {
  SentencePieceTokenizer,
  loadSentencePiece,
  YUAN_ADDED_TOKENS,
  type SentencePieceOptions,
} from './sentencepiece.js';
export { ByteTokenizer, BYTE_SPECIAL_TOKENS } from './bytes.js';
export {
  parseSpModel,
  PieceType,
  ModelType,
  type SpModel,
  type SpPiece,
  type SpTrainerSpec,
  type SpNormalizerSpec,
} from './sp-model.js';
export { encodeSpModel } from './sp-writer.js';
export { CompletionText, firstStop, type TextStep } from './completion-text.js';

import { tokenizerPlugins } from './plugins.js';
/** The plugins @yuan/tokenizer provides (what `yuan` registers from it): the tokenizers `bytes` and `sentencepiece`. */
export const plugins = tokenizerPlugins;
