import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { YuanError, type SpecialIds, type Tokenizer } from '@yuan/core';
import { BpeEncoder } from './bpe.js';
import { normalizeSp, type NormalizeOptions } from './normalize.js';
import { ProtoFormatError } from './proto.js';
import { SpDecoder } from './sp-decode.js';
import { ModelType, parseSpModel, type SpModel } from './sp-model.js';
import { SpecialMatcher } from './specials.js';
import { wellFormed } from './utf8.js';

/**
 * The strings YUAN's HF tokenizer (LlamaTokenizer with eos `<eod>` and `add_tokens(..., special_tokens=True)`)
 * matches as single tokens before SentencePiece runs. Those in the vocabulary keep their piece id; the others
 * (`<mask>`, `<predict>`, `<FIM_SUFFIX>`, `<FIM_PREFIX>`, `<FIM_MIDDLE>`) get ids after the last piece in this order.
 * `<filename>`, `<gh_stars>`, `<issue_*>` and `<reponame>` are vocabulary pieces the reference does not add, so text
 * spelling them is split by SentencePiece as the reference does.
 */
export const YUAN_ADDED_TOKENS: readonly string[] = [
  '<eod>',
  '<sep>',
  '<pad>',
  '<mask>',
  '<predict>',
  '<FIM_SUFFIX>',
  '<FIM_PREFIX>',
  '<FIM_MIDDLE>',
  '<commit_before>',
  '<commit_msg>',
  '<commit_after>',
  '<jupyter_start>',
  '<jupyter_text>',
  '<jupyter_code>',
  '<jupyter_output>',
  '<empty_output>',
  '<s>',
  '<unk>',
];

/**
 * The added tokens around which transformers 4.30 did NOT strip whitespace in YUAN's setup: `LlamaTokenizer.__init__`
 * wraps bos/eos/unk (`<s>`, `<eod>` given as eos, `<unk>`) in `AddedToken(lstrip=False, rstrip=False)`, and
 * `tokenize()` honours those flags; the tokens of `add_tokens([...], special_tokens=True)` are plain strings, for
 * which it strips both sides by default.
 */
export const YUAN_UNSTRIPPED_TOKENS: readonly string[] = ['<eod>', '<s>', '<unk>'];

/** Python's `str.isspace` characters: what transformers' `str.strip()` removes around an added token. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_SPACE = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);

/** Options of a SentencePiece tokenizer. */
export interface SentencePieceOptions {
  /** Strings matched as single tokens in text (default YUAN_ADDED_TOKENS); pass [] for plain SentencePiece. */
  addedTokens?: readonly string[];
  /** Where the model came from, for error messages. */
  source?: string;
  /**
   * Strip the whitespace on both sides of an added token before encoding the text around it, as transformers 4.30's
   * slow tokenizer did for tokens without their own lstrip/rstrip flags (what YUAN's `preprocess_data_yuan.py` ran):
   * `<sep> is` encodes as `<sep>`, `▁is`, never `<sep>`, `▁`, `▁is`. Default true.
   */
  stripAroundAddedTokens?: boolean;
  /** Added tokens whose neighbours keep their whitespace (AddedToken with lstrip/rstrip false). Default YUAN_UNSTRIPPED_TOKENS. */
  unstrippedTokens?: readonly string[];
}

const MODEL_TYPE_NAMES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };

/** Throws a YuanError unless this tokenizer can encode with the model exactly as SentencePiece does. */
function checkSupported(model: SpModel, source: string): void {
  if (model.pieces.length === 0)
    throw new YuanError('tokenizer', `${source} is not a SentencePiece model: it has no pieces`);
  const bad = model.pieces.findIndex((p) => p.type < 1 || p.type > 6);
  if (bad >= 0)
    throw new YuanError(
      'tokenizer',
      `${source} is not a SentencePiece model: piece ${bad} has type ${model.pieces[bad].type}`,
    );
  const t = model.trainer.modelType;
  if (t !== ModelType.BPE) {
    const name = MODEL_TYPE_NAMES[t] ?? `unknown (${t})`;
    throw new YuanError(
      'tokenizer',
      `${source}: SentencePiece model type ${name} is not supported; only BPE models can be loaded`,
    );
  }
  const n = model.normalizer;
  if (n.precompiledCharsmap.length > 0) {
    throw new YuanError(
      'tokenizer',
      `${source}: SentencePiece normalizer '${n.name}' with a character map is not supported; only 'identity' normalization is`,
    );
  }
  if (model.trainer.treatWhitespaceAsSuffix) {
    throw new YuanError(
      'tokenizer',
      `${source}: SentencePiece models with treat_whitespace_as_suffix are not supported`,
    );
  }
}

/**
 * A SentencePiece BPE tokenizer with HF-style added tokens: added-token strings in the text become their ids,
 * every stretch of text between them is encoded by SentencePiece on its own (so each gets the dummy-prefix ▁, as
 * the HF slow LlamaTokenizer does with `legacy` unset), and no whitespace around added tokens is stripped.
 */
export class SentencePieceTokenizer implements Tokenizer {
  readonly name = 'sentencepiece';
  readonly vocabSize: number;
  readonly special: SpecialIds;
  /** The parsed model. */
  readonly model: SpModel;
  private readonly bpe: BpeEncoder;
  private readonly decoder: SpDecoder;
  private readonly norm: NormalizeOptions;
  private readonly addedIds = new Map<string, number>();
  private readonly addedText = new Map<number, string>();
  private readonly matcher: SpecialMatcher;
  private readonly strip: boolean;
  private readonly unstripped = new Set<number>();

  constructor(model: SpModel, options: SentencePieceOptions = {}) {
    this.strip = options.stripAroundAddedTokens ?? true;
    checkSupported(model, options.source ?? 'the model');
    this.model = model;
    this.bpe = new BpeEncoder(model);
    this.decoder = new SpDecoder(model);
    this.norm = { ...model.normalizer, treatWhitespaceAsSuffix: model.trainer.treatWhitespaceAsSuffix };
    const pieceIds = new Map<string, number>();
    model.pieces.forEach((p, id) => pieceIds.has(p.piece) || pieceIds.set(p.piece, id));
    let nextId = model.pieces.length;
    for (const text of options.addedTokens ?? YUAN_ADDED_TOKENS) {
      if (text.length === 0 || this.addedIds.has(text)) continue;
      const id = pieceIds.get(text) ?? nextId++;
      this.addedIds.set(text, id);
      if (!this.addedText.has(id)) this.addedText.set(id, text);
    }
    this.vocabSize = nextId;
    for (const t of options.unstrippedTokens ?? YUAN_UNSTRIPPED_TOKENS) {
      const id = this.addedIds.get(t);
      if (id !== undefined) this.unstripped.add(id);
    }
    this.matcher = new SpecialMatcher(this.addedIds);
    const eosPiece = model.pieces[model.trainer.eosId]?.piece;
    const eod = this.addedIds.get('<eod>') ?? (eosPiece !== undefined ? model.trainer.eosId : 0);
    const sep = this.addedIds.get('<sep>');
    const pad = this.addedIds.get('<pad>');
    this.special = { eod, ...(sep !== undefined && { sep }), ...(pad !== undefined && { pad }) };
  }

  /**
   * Text → ids: added tokens as single ids, the text between them through SentencePiece (each stretch with its own
   * dummy prefix), the whitespace next to an added token stripped (see `stripAroundAddedTokens`).
   */
  encode(text: string): number[] {
    const out: number[] = [];
    const parts: (string | number)[] = [];
    this.matcher.split(
      wellFormed(text),
      (part) => parts.push(part),
      (id) => parts.push(id),
    );
    for (let i = 0; i < parts.length; i++) {
      let p = parts[i];
      if (typeof p === 'number') {
        out.push(p);
        continue;
      }
      if (this.strip) {
        const before = parts[i - 1];
        const after = parts[i + 1];
        if (typeof before === 'number' && !this.unstripped.has(before)) p = p.replace(LEADING_SPACE, '');
        if (typeof after === 'number' && !this.unstripped.has(after)) p = p.replace(TRAILING_SPACE, '');
        if (p === '') continue;
      }
      this.bpe.encode(normalizeSp(p, this.norm, false), out, this.norm.escapeWhitespaces);
    }
    return out;
  }

  /** Plain SentencePiece `EncodeAsIds` of the text, without added-token matching. */
  encodeSentencePiece(text: string): number[] {
    const out: number[] = [];
    this.bpe.encode(normalizeSp(wellFormed(text), this.norm, false), out, this.norm.escapeWhitespaces);
    return out;
  }

  /** Ids → text: each stretch between added tokens decoded as SentencePiece does, added tokens as their strings. */
  decode(ids: readonly number[]): string {
    let text = '';
    let from = 0;
    for (let i = 0; i < ids.length; i++) {
      const added = this.addedText.get(this.check(ids[i]));
      if (added === undefined) continue;
      text += this.decoder.decode(ids.slice(from, i)) + added;
      from = i + 1;
    }
    return text + this.decoder.decode(ids.slice(from));
  }

  /** The piece string of each id (added tokens outside the vocabulary as their text). */
  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => this.model.pieces[this.check(id)]?.piece ?? (this.addedText.get(id) as string));
  }

  /** The id of a piece or added token, or undefined. */
  pieceToId(piece: string): number | undefined {
    return this.addedIds.get(piece) ?? this.bpe.pieceId(piece);
  }

  private check(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new YuanError(
        'tokenizer',
        `token id ${id} is out of range for this SentencePiece tokenizer (vocabulary size ${this.vocabSize})`,
      );
    }
    return id;
  }
}

/** Reads and checks a SentencePiece `.model` file (a directory holding `tokenizer.model` also works). */
export async function loadSentencePiece(
  path: string,
  options: Omit<SentencePieceOptions, 'source'> = {},
): Promise<SentencePieceTokenizer> {
  let file = path;
  try {
    if ((await stat(path)).isDirectory()) file = join(path, 'tokenizer.model');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new YuanError('tokenizer', `SentencePiece model not found: ${path}`);
    throw new YuanError('tokenizer', `cannot read SentencePiece model ${path}: ${(e as Error).message}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new YuanError('tokenizer', `SentencePiece model not found: ${path} is a directory without tokenizer.model`);
    }
    throw new YuanError('tokenizer', `cannot read SentencePiece model ${file}: ${(e as Error).message}`);
  }
  let model: SpModel;
  try {
    model = parseSpModel(bytes);
  } catch (e) {
    if (e instanceof ProtoFormatError)
      throw new YuanError('tokenizer', `${file} is not a SentencePiece model: ${e.message}`);
    throw e;
  }
  return new SentencePieceTokenizer(model, { ...options, source: file });
}
