import type { SpModel } from './sp-model.js';
import { encodeUtf8Lossless } from './utf8.js';

/** Appends protobuf fields to a growing byte list. */
class ProtoWriter {
  readonly out: number[] = [];

  varintField(field: number, value: number): void {
    this.varint(field * 8);
    if (value < 0) {
      // int32 negatives are sign-extended to 10 bytes
      let lo = value >>> 0;
      for (let i = 0; i < 4; i++, lo >>>= 7) this.out.push((lo & 0x7f) | 0x80);
      this.out.push((lo & 0x0f) | 0x70 | 0x80);
      for (let i = 0; i < 4; i++) this.out.push(0xff);
      this.out.push(0x01);
      return;
    }
    this.varint(value);
  }

  floatField(field: number, value: number): void {
    this.varint(field * 8 + 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.out.push(...b);
  }

  bytesField(field: number, bytes: Uint8Array | number[]): void {
    this.varint(field * 8 + 2);
    this.varint(bytes.length);
    for (const b of bytes) this.out.push(b);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, encodeUtf8Lossless(s));
  }

  private varint(v: number): void {
    while (v >= 0x80) {
      this.out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.out.push(v);
  }
}

/** Serializes a model as a SentencePiece `ModelProto` (the fields `parseSpModel` reads), e.g. to build test models. */
export function encodeSpModel(model: SpModel): Uint8Array {
  const w = new ProtoWriter();
  for (const p of model.pieces) {
    const pw = new ProtoWriter();
    pw.stringField(1, p.piece);
    pw.floatField(2, p.score);
    pw.varintField(3, p.type);
    w.bytesField(1, pw.out);
  }
  const t = model.trainer;
  const tw = new ProtoWriter();
  tw.varintField(3, t.modelType);
  tw.varintField(4, t.vocabSize);
  tw.varintField(24, t.treatWhitespaceAsSuffix ? 1 : 0);
  tw.varintField(25, t.splitDigits ? 1 : 0);
  tw.varintField(35, t.byteFallback ? 1 : 0);
  tw.varintField(40, t.unkId);
  tw.varintField(41, t.bosId);
  tw.varintField(42, t.eosId);
  tw.varintField(43, t.padId);
  tw.stringField(44, t.unkSurface);
  w.bytesField(2, tw.out);
  const n = model.normalizer;
  const nw = new ProtoWriter();
  nw.stringField(1, n.name);
  if (n.precompiledCharsmap.length > 0) nw.bytesField(2, n.precompiledCharsmap);
  nw.varintField(3, n.addDummyPrefix ? 1 : 0);
  nw.varintField(4, n.removeExtraWhitespaces ? 1 : 0);
  nw.varintField(5, n.escapeWhitespaces ? 1 : 0);
  if (n.normalizationRuleTsv.length > 0) nw.stringField(6, n.normalizationRuleTsv);
  w.bytesField(3, nw.out);
  return Uint8Array.from(w.out);
}
