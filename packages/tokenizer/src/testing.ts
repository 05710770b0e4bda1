import { ModelType, PieceType, type SpModel, type SpPiece } from './sp-model.js';

/** Test helper: a small BPE model of <unk>, <s>, </s>, the 256 byte pieces (with byte fallback), then `extra`. */
export function makeModel(
  extra: Array<[string, number, number?]>,
  o: { byteFallback?: boolean; dummy?: boolean } = {},
): SpModel {
  const pieces: SpPiece[] = [
    { piece: '<unk>', score: 0, type: PieceType.UNKNOWN },
    { piece: '<s>', score: 0, type: PieceType.CONTROL },
    { piece: '</s>', score: 0, type: PieceType.CONTROL },
  ];
  if (o.byteFallback ?? true) {
    for (let b = 0; b < 256; b++) pieces.push({ piece: bytePiece(b), score: 0, type: PieceType.BYTE });
  }
  for (const [piece, score, type] of extra) pieces.push({ piece, score, type: type ?? PieceType.NORMAL });
  return {
    pieces,
    trainer: {
      modelType: ModelType.BPE,
      vocabSize: pieces.length,
      splitDigits: false,
      treatWhitespaceAsSuffix: false,
      byteFallback: o.byteFallback ?? true,
      unkId: 0,
      bosId: 1,
      eosId: 2,
      padId: -1,
      unkSurface: ' \u2047 ',
    },
    normalizer: {
      name: 'identity',
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: o.dummy ?? true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
      normalizationRuleTsv: '',
    },
  };
}

function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * Test helper: a straightforward O(n²) BPE over normalized text (merge the best-scoring adjacent pair, leftmost on
 * ties; unknown symbols as byte pieces), written independently of BpeEncoder to check it. No USER_DEFINED/UNUSED.
 */
export function naiveBpe(model: SpModel): (normalized: string) => number[] {
  const ids = new Map<string, number>();
  const reserved = new Map<string, number>();
  model.pieces.forEach((p, id) => {
    const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
    const m = normal ? ids : reserved;
    if (!m.has(p.piece)) m.set(p.piece, id);
  });
  return (text) => {
    const syms = [...text];
    for (;;) {
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const id = ids.get(syms[i] + syms[i + 1]);
        if (id !== undefined && model.pieces[id].score > bestScore) {
          best = i;
          bestScore = model.pieces[id].score;
        }
      }
      if (best < 0) break;
      syms.splice(best, 2, syms[best] + syms[best + 1]);
    }
    const out: number[] = [];
    for (const s of syms) {
      const id = reserved.get(s) ?? ids.get(s);
      if (id !== undefined) out.push(id);
      else for (const b of new TextEncoder().encode(s)) out.push(reserved.get(bytePiece(b)) ?? 0);
    }
    return out;
  };
}
