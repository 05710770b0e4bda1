import { decodeUtf8Lossless } from './utf8.js';

/** The protobuf wire types this reader understands (groups, 3 and 4, are rejected). */
export const WIRE = { VARINT: 0, FIXED64: 1, LEN: 2, FIXED32: 5 } as const;

/** A protobuf message whose bytes do not follow the wire format. */
export class ProtoFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoFormatError';
  }
}

/** A forward-only reader over one protobuf message: call `next()`, then read or `skip()` the field. */
export class ProtoReader {
  /** Field number of the current field (valid after `next()` returned true). */
  field = 0;
  /** Wire type of the current field. */
  wire = 0;
  private pos: number;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Reads the next field's tag; false at the end of the message. */
  next(): boolean {
    if (this.pos >= this.end) return false;
    const at = this.pos;
    const tag = this.rawVarint();
    this.field = Math.floor(tag / 8);
    this.wire = tag % 8;
    if (this.field === 0) throw new ProtoFormatError(`field number 0 at byte ${at}`);
    if (this.wire !== 0 && this.wire !== 1 && this.wire !== 2 && this.wire !== 5) {
      throw new ProtoFormatError(`unsupported wire type ${this.wire} for field ${this.field} at byte ${at}`);
    }
    return true;
  }

  /** The current varint field as a signed 32-bit integer (int32/enum/bool semantics; 64-bit values are truncated). */
  int32(): number {
    this.expect(WIRE.VARINT);
    return this.rawVarint(true);
  }

  /** The current varint field as a boolean. */
  bool(): boolean {
    return this.int32() !== 0;
  }

  /** The current fixed32 field as a float. */
  float(): number {
    this.expect(WIRE.FIXED32);
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** The current length-delimited field's bytes (a view, not a copy). */
  bytes(): Uint8Array {
    this.expect(WIRE.LEN);
    const len = this.rawVarint();
    this.need(len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /**
   * The current length-delimited field as a string, byte-exact: protobuf strings are raw bytes, so a leading U+FEFF
   * is kept (a plain TextDecoder would drop it as a byte-order mark) and invalid UTF-8 bytes are kept as lone
   * surrogates (see `decodeUtf8Lossless`; `encodeUtf8Lossless` gives the same bytes back).
   */
  string(): string {
    return decodeUtf8Lossless(this.bytes());
  }

  /** A reader over the current length-delimited field as an embedded message. */
  message(): ProtoReader {
    const b = this.bytes();
    return new ProtoReader(this.buf, b.byteOffset - this.buf.byteOffset, b.byteOffset - this.buf.byteOffset + b.length);
  }

  /** Skips the current field's value. */
  skip(): void {
    switch (this.wire) {
      case WIRE.VARINT:
        this.rawVarint();
        return;
      case WIRE.FIXED64:
        this.need(8);
        this.pos += 8;
        return;
      case WIRE.LEN:
        this.bytes();
        return;
      default:
        this.need(4);
        this.pos += 4;
    }
  }

  private expect(wire: number): void {
    if (this.wire !== wire) {
      throw new ProtoFormatError(`field ${this.field} has wire type ${this.wire}, expected ${wire}`);
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new ProtoFormatError(`truncated message: field ${this.field} runs past the end`);
  }

  /** Reads a varint of up to 10 bytes; returns the low 32 bits (signed if `signed`), or the exact value below 2^53. */
  private rawVarint(signed = false): number {
    let lo = 0;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoFormatError('truncated varint');
      const b = this.buf[this.pos++];
      if (i < 5) lo |= (b & 0x7f) << (7 * i);
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return signed ? lo | 0 : value <= Number.MAX_SAFE_INTEGER ? value : lo >>> 0;
    }
    throw new ProtoFormatError('varint longer than 10 bytes');
  }
}
