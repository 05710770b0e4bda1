import { YuanError, type SpecialIds, type Tokenizer } from '@yuan/core';
import { SpecialMatcher } from './specials.js';
import { utf8Bytes } from './utf8.js';

/** The special tokens of ByteTokenizer, ids 256.. in this order. */
export const BYTE_SPECIAL_TOKENS: readonly string[] = [
  '<eod>',
  '<sep>',
  '<pad>',
  '<FIM_PREFIX>',
  '<FIM_MIDDLE>',
  '<FIM_SUFFIX>',
  '<mask>',
  '<predict>',
];

const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Printable form of one byte: ASCII graphic characters as themselves, a space as ▁, the rest as `<0xNN>`. */
function bytePiece(b: number): string {
  if (b === 0x20) return '\u2581';
  if (b > 0x20 && b < 0x7f) return String.fromCharCode(b);
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * A tokenizer for tiny presets: ids 0..255 are UTF-8 bytes, 256..263 the special tokens (`<eod>`=256, `<sep>`=257,
 * `<pad>`=258, `<FIM_PREFIX>`, `<FIM_MIDDLE>`, `<FIM_SUFFIX>`, `<mask>`, `<predict>`), which are matched in text.
 */
export class ByteTokenizer implements Tokenizer {
  readonly name = 'bytes';
  readonly vocabSize = 256 + BYTE_SPECIAL_TOKENS.length;
  readonly special: SpecialIds = { eod: 256, sep: 257, pad: 258 };
  private readonly matcher = new SpecialMatcher(new Map(BYTE_SPECIAL_TOKENS.map((t, i) => [t, 256 + i])));

  /** Text → UTF-8 byte ids, with special-token strings as their single ids. */
  encode(text: string): number[] {
    const out: number[] = [];
    this.matcher.split(
      text,
      (part) => {
        for (const b of utf8Bytes(part)) out.push(b);
      },
      (id) => out.push(id),
    );
    return out;
  }

  /** Ids → text; invalid UTF-8 becomes U+FFFD, special ids their strings. */
  decode(ids: readonly number[]): string {
    let text = '';
    let bytes: number[] = [];
    for (const id of ids) {
      if (this.check(id) < 256) {
        bytes.push(id);
        continue;
      }
      text += decoder.decode(Uint8Array.from(bytes)) + BYTE_SPECIAL_TOKENS[id - 256];
      bytes = [];
    }
    return text + decoder.decode(Uint8Array.from(bytes));
  }

  /** Printable form of each id. */
  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => (this.check(id) < 256 ? bytePiece(id) : BYTE_SPECIAL_TOKENS[id - 256]));
  }

  private check(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new YuanError(
        'tokenizer',
        `token id ${id} is out of range for the byte tokenizer (vocabulary size ${this.vocabSize})`,
      );
    }
    return id;
  }
}
