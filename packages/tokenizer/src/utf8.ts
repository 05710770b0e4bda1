const encoder = new TextEncoder();

/** The UTF-8 bytes of a string (lone surrogates become U+FFFD). */
export function utf8Bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Replaces lone UTF-16 surrogates with U+FFFD, so that the string has a UTF-8 form. */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there does not start one. */
function sequenceLength(b: ArrayLike<number>, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

const lenient = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes UTF-8 as SentencePiece does: every byte that does not start a valid sequence becomes one U+FFFD. */
export function decodeUtf8PerByte(bytes: ArrayLike<number>): string {
  const b = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
  let out = '';
  let run = 0; // start of the current run of valid bytes
  let i = 0;
  while (i < b.length) {
    const n = sequenceLength(b, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) out += lenient.decode(b.subarray(run, i));
    out += '\uFFFD';
    run = ++i;
  }
  if (i > run) out += lenient.decode(b.subarray(run, i));
  return out;
}

/**
 * Decodes bytes read from a file exactly and losslessly: every valid UTF-8 sequence becomes its character (a leading
 * byte-order mark U+FEFF included, never stripped), and every byte that does not start a valid sequence becomes the
 * lone surrogate U+DC80 + (byte − 0x80), which no valid UTF-8 can produce, so `encodeUtf8Lossless` gives the bytes back.
 */
export function decodeUtf8Lossless(bytes: Uint8Array): string {
  let out = '';
  let run = 0;
  let i = 0;
  while (i < bytes.length) {
    const n = sequenceLength(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) out += lenient.decode(bytes.subarray(run, i));
    out += String.fromCharCode(0xdc00 + bytes[i]);
    run = ++i;
  }
  if (i > run) out += lenient.decode(bytes.subarray(run, i));
  return out;
}

/** The bytes `decodeUtf8Lossless` read `text` from: UTF-8, with each lone surrogate U+DC80–U+DCFF back as its raw byte. */
export function encodeUtf8Lossless(text: string): Uint8Array {
  if (!/[\uD800-\uDFFF]/.test(text)) return encoder.encode(text);
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) out.push(c - 0xdc00);
    else for (const b of encoder.encode(ch)) out.push(b);
  }
  return Uint8Array.from(out);
}
