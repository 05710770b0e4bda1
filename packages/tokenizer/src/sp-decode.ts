import { SPACE_SYMBOL } from './normalize.js';
import { PieceType, type SpModel } from './sp-model.js';
import { decodeUtf8PerByte, wellFormed } from './utf8.js';

/**
 * SentencePiece's id → text decoding: runs of `<0xNN>` byte pieces become UTF-8 (each invalid byte one U+FFFD),
 * control pieces vanish, `<unk>` shows as the unk surface (` ⁇ `), ▁ becomes a space, and the ▁ of the first
 * visible piece is dropped when the model adds a dummy prefix.
 */
export class SpDecoder {
  /** Byte value of each `<0xNN>` piece id, -1 for other pieces. */
  private readonly byteOf: Int16Array;
  /** Text of each piece id: ▁ as spaces, '' for control pieces, the unk surface for unknown pieces. */
  private readonly surface: string[];
  /** Whether a piece id may lose a leading ▁ at the start of the text. */
  private readonly leadingSpace: Uint8Array;
  private bytes = new Uint8Array(64);

  constructor(model: SpModel) {
    const n = model.pieces.length;
    this.byteOf = new Int16Array(n).fill(-1);
    this.surface = new Array<string>(n);
    this.leadingSpace = new Uint8Array(n);
    const norm = model.normalizer;
    const strip = !model.trainer.treatWhitespaceAsSuffix && (norm.addDummyPrefix || norm.removeExtraWhitespaces);
    model.pieces.forEach((p, id) => {
      const m = p.type === PieceType.BYTE ? /^<0x([0-9A-Fa-f]{2})>$/.exec(p.piece) : null;
      if (m) this.byteOf[id] = parseInt(m[1], 16);
      if (p.type === PieceType.CONTROL) this.surface[id] = '';
      else if (p.type === PieceType.UNKNOWN) this.surface[id] = model.trainer.unkSurface;
      else {
        this.surface[id] = wellFormed(p.piece.replaceAll(SPACE_SYMBOL, ' ')); // a raw invalid byte shows as U+FFFD
        this.leadingSpace[id] = strip && p.piece.startsWith(SPACE_SYMBOL) ? 1 : 0;
      }
    });
  }

  /** Decodes ids, which must all be valid piece ids of the model. */
  decode(ids: readonly number[]): string {
    const parts: string[] = [];
    let nBytes = 0;
    let empty = true; // nothing decoded yet
    let isBosWs = true;
    let bosWsSeen = false;
    for (const id of ids) {
      const b = this.byteOf[id];
      if (b >= 0) {
        if (nBytes === this.bytes.length) this.growBytes();
        this.bytes[nBytes++] = b;
        continue;
      }
      if (nBytes > 0) {
        parts.push(decodeUtf8PerByte(this.bytes.subarray(0, nBytes)));
        nBytes = 0;
        empty = false;
      }
      if (bosWsSeen || !empty) isBosWs = false;
      let text = this.surface[id];
      bosWsSeen = isBosWs && this.leadingSpace[id] === 1;
      if (bosWsSeen) text = text.slice(1);
      if (text.length > 0) {
        parts.push(text);
        empty = false;
      }
    }
    if (nBytes > 0) parts.push(decodeUtf8PerByte(this.bytes.subarray(0, nBytes)));
    return parts.join('');
  }

  private growBytes(): void {
    const b = new Uint8Array(this.bytes.length * 2);
    b.set(this.bytes);
    this.bytes = b;
  }
}
