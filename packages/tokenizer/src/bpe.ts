import { PairHeap } from './heap.js';
import { hashPower, hashRange, PieceTable } from './piece-table.js';
import { SPACE_SYMBOL } from './normalize.js';
import { PieceType, type SpModel } from './sp-model.js';
import { utf8Bytes } from './utf8.js';

const SPACE = SPACE_SYMBOL.charCodeAt(0);
/** Chunks up to this many UTF-16 units are memoized. */
const CACHE_MAX_CHUNK = 64;
/** The memo is dropped when it reaches this many entries. */
const CACHE_MAX_ENTRIES = 1 << 17;

/** text[begin, end), with spaces escaped as ▁ if asked. */
function chunkText(text: string, begin: number, end: number, escapeSpaces: boolean): string {
  const s = text.slice(begin, end);
  return escapeSpaces ? s.replaceAll(' ', SPACE_SYMBOL) : s;
}

/** Whether `key` equals text[begin, begin + len) read with spaces as ▁ if asked. */
function sameChunk(key: string, text: string, begin: number, len: number, escapeSpaces: boolean): boolean {
  if (key.length !== len) return false;
  for (let i = 0; i < len; i++) {
    let c = text.charCodeAt(begin + i);
    if (c === 0x20 && escapeSpaces) c = SPACE;
    if (c !== key.charCodeAt(i)) return false;
  }
  return true;
}

/** A memoized chunk segmentation, chained on hash collisions. */
interface CacheEntry {
  key: string;
  ids: number[];
  next: CacheEntry | undefined;
}

/**
 * SentencePiece BPE segmentation of normalized text (spaces as ▁), as `bpe_model.cc` does it: characters
 * (or longest USER_DEFINED pieces, which never merge), then repeated merging of the adjacent pair whose piece has
 * the highest score (leftmost on ties), UNUSED pieces split back into the pieces they were merged from, and
 * unknown pieces spelled as `<0xNN>` byte pieces (byte fallback) or as one `<unk>` per run of unknowns.
 *
 * For speed the text is cut into chunks where no vocabulary piece can span the cut (before a ▁ that follows a
 * non-▁ when no piece has a ▁ after another character, and around characters that occur in no multi-character
 * piece, such as `\n` or, with split_digits, the digits); merges never cross such a cut and the agenda's order
 * within a chunk is unchanged, so the result is the same as segmenting the whole text. Short chunks are memoized.
 */
export class BpeEncoder {
  /** NORMAL, USER_DEFINED and UNUSED pieces: those BPE merges may form. */
  private readonly mergeable: PieceTable;
  /** CONTROL, UNKNOWN and BYTE pieces, which take precedence when a final symbol is looked up. */
  private readonly reserved: PieceTable;
  /** For each mergeable id, the id a final symbol with that text gets (a reserved id with the same text wins). */
  private readonly finalId: Int32Array;
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  private readonly userDefined = new Set<string>();
  private readonly userFirst = new Set<number>();
  private maxUserLen = 0;
  private readonly byteIds = new Int32Array(256);
  private readonly unkId: number;
  private readonly byteFallback: boolean;
  private readonly hasUnused: boolean;
  private readonly cutBeforeSpace: boolean;
  private readonly isolated = new Uint8Array(65536);
  private cache = new Map<number, CacheEntry>();
  private cacheSize = 0;
  private readonly heap = new PairHeap();
  private start = new Int32Array(256);
  private end = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private frozen = new Uint8Array(256);
  private hash = new Int32Array(256);
  private pow = new Int32Array(256);
  private rev: Map<string, [string, string]> | null = null;

  constructor(model: SpModel) {
    const n = model.pieces.length;
    this.scores = new Float32Array(n);
    this.types = new Uint8Array(n);
    let unk = -1;
    let hasUnused = false;
    const inMerged = new Uint8Array(65536);
    let spaceAfterChar = false;
    const mergeable: string[] = [];
    const reserved: string[] = [];
    model.pieces.forEach((p, id) => {
      this.scores[id] = p.score;
      this.types[id] = p.type;
      const canMerge = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      // a string that can never match keeps each table's ids equal to the piece ids
      mergeable.push(canMerge ? p.piece : '');
      reserved.push(canMerge ? '' : p.piece);
      if (p.type === PieceType.UNKNOWN && unk < 0) unk = id;
      if (p.type === PieceType.UNUSED) hasUnused = true;
      if (p.type === PieceType.USER_DEFINED && p.piece.length > 0) {
        this.userDefined.add(p.piece);
        this.userFirst.add(p.piece.charCodeAt(0));
        this.maxUserLen = Math.max(this.maxUserLen, p.piece.length);
      }
      if (canMerge && p.piece.length > 1) {
        for (let i = 0; i < p.piece.length; i++) {
          inMerged[p.piece.charCodeAt(i)] = 1;
          if (i > 0 && p.piece.charCodeAt(i) === SPACE && p.piece.charCodeAt(i - 1) !== SPACE) spaceAfterChar = true;
        }
      }
    });
    this.mergeable = new PieceTable(mergeable);
    this.reserved = new PieceTable(reserved);
    this.finalId = new Int32Array(n);
    mergeable.forEach((p, id) => {
      const r = p.length > 0 ? this.reserved.find(p, 0, p.length, hashRange(p, 0, p.length)) : -1;
      this.finalId[id] = r >= 0 ? r : id;
    });
    this.unkId = unk >= 0 ? unk : model.trainer.unkId;
    this.byteFallback = model.trainer.byteFallback;
    this.hasUnused = hasUnused;
    this.cutBeforeSpace = !spaceAfterChar;
    for (let c = 0; c < 65536; c++) this.isolated[c] = inMerged[c] || (c >= 0xd800 && c <= 0xdfff) ? 0 : 1;
    for (let b = 0; b < 256; b++)
      this.byteIds[b] = this.pieceId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? this.unkId;
  }

  /**
   * Appends the ids of normalized text to `out`. With `escapeSpaces`, each ' ' is read as ▁ (so the caller need not
   * build an escaped copy of a large text).
   */
  encode(text: string, out: number[], escapeSpaces = false): void {
    const first = out.length;
    const iso = this.isolated;
    const cutSpace = this.cutBeforeSpace;
    const blank = escapeSpaces ? 0x20 : -1;
    let begin = 0;
    let prevCode = text.length > 0 ? text.charCodeAt(0) : 0;
    if (prevCode === blank) prevCode = SPACE;
    let hash = Math.imul(0x811c9dc5 ^ prevCode, 0x01000193);
    for (let i = 1; i < text.length; i++) {
      let c = text.charCodeAt(i);
      if (c === blank) c = SPACE;
      if (iso[c] === 1 || iso[prevCode] === 1 || (c === SPACE && prevCode !== SPACE && cutSpace)) {
        this.encodeChunk(text, begin, i, hash, escapeSpaces, out);
        begin = i;
        hash = 0x811c9dc5;
      }
      hash = Math.imul(hash ^ c, 0x01000193);
      prevCode = c;
    }
    if (text.length > 0) this.encodeChunk(text, begin, text.length, hash, escapeSpaces, out);
    if (!this.byteFallback) this.mergeUnknownRuns(out, first);
  }

  /** The id of a vocabulary piece, or undefined. */
  pieceId(piece: string): number | undefined {
    const id = this.lookup(piece, 0, piece.length, hashRange(piece, 0, piece.length));
    return id >= 0 ? id : undefined;
  }

  /** Drops the memo of chunk segmentations. */
  clearCache(): void {
    this.cache = new Map();
    this.cacheSize = 0;
  }

  /** Appends the ids of text[begin, end), from the memo when possible; `hash` is the FNV-1a hash of the chunk. */
  private encodeChunk(
    text: string,
    begin: number,
    end: number,
    hash: number,
    escapeSpaces: boolean,
    out: number[],
  ): void {
    const len = end - begin;
    if (len > CACHE_MAX_CHUNK) {
      this.segment(chunkText(text, begin, end, escapeSpaces), out);
      return;
    }
    let entry = this.cache.get(hash);
    while (entry !== undefined && !sameChunk(entry.key, text, begin, len, escapeSpaces)) entry = entry.next;
    if (entry === undefined) {
      const key = chunkText(text, begin, end, escapeSpaces);
      const ids: number[] = [];
      this.segment(key, ids);
      if (this.cacheSize >= CACHE_MAX_ENTRIES) this.clearCache();
      entry = { key, ids, next: this.cache.get(hash) };
      this.cache.set(hash, entry);
      this.cacheSize++;
    }
    const ids = entry.ids;
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** The BPE merge loop over one chunk. */
  private segment(s: string, out: number[]): void {
    let n = 0;
    this.reserve(s.length);
    const { start, end, prev, next, frozen, hash, pow } = this;
    for (let i = 0; i < s.length;) {
      let m = 0;
      let f = 0;
      if (this.maxUserLen > 0 && this.userFirst.has(s.charCodeAt(i))) {
        for (let len = Math.min(this.maxUserLen, s.length - i); len > 0; len--) {
          if (this.userDefined.has(s.slice(i, i + len))) {
            m = len;
            f = 1;
            break;
          }
        }
      }
      if (m === 0) {
        const c = s.charCodeAt(i);
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        m = c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
      }
      start[n] = i;
      end[n] = i + m;
      prev[n] = n - 1;
      next[n] = n + 1;
      frozen[n] = f;
      hash[n] = hashRange(s, i, i + m);
      pow[n] = hashPower(m);
      n++;
      i += m;
    }
    if (n === 0) return;
    next[n - 1] = -1;
    this.rev = this.hasUnused ? new Map() : null;
    if (n > 1) {
      const heap = this.heap;
      heap.clear();
      for (let k = 1; k < n; k++) this.addPair(s, k - 1, k);
      while (heap.pop()) {
        const l = heap.topLeft;
        const r = heap.topRight;
        const ll = end[l] - start[l];
        const rl = end[r] - start[r];
        if (ll === 0 || rl === 0 || ll + rl !== heap.topSize) continue;
        end[l] = end[r];
        hash[l] = (Math.imul(hash[l], pow[r]) + hash[r]) | 0;
        pow[l] = Math.imul(pow[l], pow[r]);
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        end[r] = start[r];
        this.addPair(s, prev[l], l);
        this.addPair(s, l, next[l]);
      }
    }
    for (let k = 0; k !== -1; k = next[k]) this.emit(s, start[k], end[k], hash[k], out);
  }

  /** Queues the merge of symbols l and r if their concatenation is a piece. */
  private addPair(s: string, l: number, r: number): void {
    if (l < 0 || r < 0 || this.frozen[l] || this.frozen[r]) return;
    const h = (Math.imul(this.hash[l], this.pow[r]) + this.hash[r]) | 0;
    const id = this.mergeable.find(s, this.start[l], this.end[r], h);
    if (id < 0) return;
    this.heap.push(this.scores[id], l, r, this.end[r] - this.start[l]);
    if (this.rev !== null && this.types[id] === PieceType.UNUSED) {
      const piece = s.slice(this.start[l], this.end[r]);
      this.rev.set(piece, [s.slice(this.start[l], this.end[l]), s.slice(this.start[r], this.end[r])]);
    }
  }

  /** The id a final symbol text[start, end) gets (reserved pieces first, as PieceToId does), or -1. */
  private lookup(text: string, start: number, end: number, h: number): number {
    const id = this.mergeable.find(text, start, end, h);
    return id >= 0 ? this.finalId[id] : this.reserved.find(text, start, end, h);
  }

  /** Outputs one final symbol: its id, its resegmentation if it is UNUSED, or its bytes if it is unknown. */
  private emit(s: string, start: number, end: number, h: number, out: number[]): void {
    const found = this.lookup(s, start, end, h);
    const id = found >= 0 ? found : this.unkId;
    if (this.rev !== null && this.types[id] === PieceType.UNUSED) {
      const parts = this.rev.get(s.slice(start, end));
      if (parts !== undefined) {
        for (const part of parts) this.emit(part, 0, part.length, hashRange(part, 0, part.length), out);
        return;
      }
    }
    if (id === this.unkId && this.byteFallback) {
      for (const b of utf8Bytes(s.slice(start, end))) out.push(this.byteIds[b]);
      return;
    }
    out.push(id);
  }

  /** Without byte fallback, SentencePiece reports a run of unknown pieces as one `<unk>`. */
  private mergeUnknownRuns(out: number[], from: number): void {
    let w = from;
    for (let i = from; i < out.length; i++) {
      if (out[i] === this.unkId && w > from && out[w - 1] === this.unkId) continue;
      out[w++] = out[i];
    }
    out.length = w;
  }

  private reserve(n: number): void {
    if (this.start.length >= n) return;
    const cap = Math.max(n, this.start.length * 2);
    this.start = new Int32Array(cap);
    this.end = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.frozen = new Uint8Array(cap);
    this.hash = new Int32Array(cap);
    this.pow = new Int32Array(cap);
  }
}
