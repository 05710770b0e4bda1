import { ProtoReader, WIRE } from './proto.js';

/** SentencePiece piece types (`ModelProto.SentencePiece.Type`). */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** SentencePiece model types (`TrainerSpec.ModelType`). */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

/** One vocabulary entry of a SentencePiece model. */
export interface SpPiece {
  /** The piece's bytes as read, exactly (see `ProtoReader.string`: a bad UTF-8 byte is a lone surrogate U+DC80–U+DCFF). */
  piece: string;
  score: number;
  type: number;
}

/** The `TrainerSpec` fields that matter for encoding and decoding. */
export interface SpTrainerSpec {
  modelType: number;
  vocabSize: number;
  splitDigits: boolean;
  treatWhitespaceAsSuffix: boolean;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
}

/** The `NormalizerSpec` fields that matter for encoding. */
export interface SpNormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

/** A parsed SentencePiece `ModelProto`. */
export interface SpModel {
  pieces: SpPiece[];
  trainer: SpTrainerSpec;
  normalizer: SpNormalizerSpec;
}

function parsePiece(r: ProtoReader): SpPiece {
  const p: SpPiece = { piece: '', score: 0, type: PieceType.NORMAL };
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE.LEN) p.piece = r.string();
    else if (r.field === 2 && r.wire === WIRE.FIXED32) p.score = r.float();
    else if (r.field === 3 && r.wire === WIRE.VARINT) p.type = r.int32();
    else r.skip();
  }
  return p;
}

function parseTrainer(r: ProtoReader): SpTrainerSpec {
  const t: SpTrainerSpec = {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    splitDigits: false,
    treatWhitespaceAsSuffix: false,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
  };
  while (r.next()) {
    if (r.wire === WIRE.VARINT) {
      switch (r.field) {
        case 3:
          t.modelType = r.int32();
          continue;
        case 4:
          t.vocabSize = r.int32();
          continue;
        case 24:
          t.treatWhitespaceAsSuffix = r.bool();
          continue;
        case 25:
          t.splitDigits = r.bool();
          continue;
        case 35:
          t.byteFallback = r.bool();
          continue;
        case 40:
          t.unkId = r.int32();
          continue;
        case 41:
          t.bosId = r.int32();
          continue;
        case 42:
          t.eosId = r.int32();
          continue;
        case 43:
          t.padId = r.int32();
          continue;
      }
    } else if (r.field === 44 && r.wire === WIRE.LEN) {
      t.unkSurface = r.string();
      continue;
    }
    r.skip();
  }
  return t;
}

function defaultNormalizer(): SpNormalizerSpec {
  return {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
}

function parseNormalizer(r: ProtoReader): SpNormalizerSpec {
  const n = defaultNormalizer();
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE.LEN) n.name = r.string();
    else if (r.field === 2 && r.wire === WIRE.LEN) n.precompiledCharsmap = r.bytes();
    else if (r.field === 3 && r.wire === WIRE.VARINT) n.addDummyPrefix = r.bool();
    else if (r.field === 4 && r.wire === WIRE.VARINT) n.removeExtraWhitespaces = r.bool();
    else if (r.field === 5 && r.wire === WIRE.VARINT) n.escapeWhitespaces = r.bool();
    else if (r.field === 6 && r.wire === WIRE.LEN) n.normalizationRuleTsv = r.string();
    else r.skip();
  }
  return n;
}

/**
 * Parses a serialized SentencePiece `ModelProto` (pieces=1, trainer_spec=2, normalizer_spec=3); throws
 * ProtoFormatError on malformed bytes. Fields absent from the file take the proto's declared defaults.
 */
export function parseSpModel(buf: Uint8Array): SpModel {
  const r = new ProtoReader(buf);
  const model: SpModel = {
    pieces: [],
    trainer: parseTrainer(new ProtoReader(new Uint8Array(0))),
    normalizer: defaultNormalizer(),
  };
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE.LEN) model.pieces.push(parsePiece(r.message()));
    else if (r.field === 2 && r.wire === WIRE.LEN) model.trainer = parseTrainer(r.message());
    else if (r.field === 3 && r.wire === WIRE.LEN) model.normalizer = parseNormalizer(r.message());
    else r.skip();
  }
  return model;
}
