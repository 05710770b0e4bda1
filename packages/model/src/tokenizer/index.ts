/** Tokenizers: SentencePiece BPE `.model` files with YUAN's added tokens, and a byte-level tokenizer. */
export { SentencePieceTokenizer, loadSentencePiece, YUAN_ADDED_TOKENS, type SentencePieceOptions } from './sentencepiece.js';
export { ByteTokenizer, BYTE_SPECIAL_TOKENS } from './bytes.js';
export { tokenizerPlugins } from './plugins.js';
export { parseSpModel, PieceType, ModelType, type SpModel, type SpPiece, type SpTrainerSpec, type SpNormalizerSpec } from './sp-model.js';
export { encodeSpModel } from './sp-writer.js';
