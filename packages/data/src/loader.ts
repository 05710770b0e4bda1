import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { Rng, YuanError } from '@yuan/core';
import { firstOutside, IndexedDataset, MEGATRON_DTYPES, SCAN_BYTES } from './megatron.js';
import type { PackedIndex, SplitName } from './pack.js';

/** A batch of packed windows, flat row-major [rows, seqLength]. */
export interface Batch {
  rows: number;
  seqLength: number;
  ids: Int32Array;
  targets: Int32Array;
  /** 1 where the target counts in the loss. */
  mask: Float32Array;
  /** Position ids (restarting after `<eod>` when asked). */
  positions: Int32Array;
}

/** Where a loader is in its data: the epoch, the next window of that epoch's order, and the RNG state the order was drawn from. */
export interface DataPosition {
  epoch: number;
  cursor: number;
  epochRng: number[];
}

/** Where a split's tokens come from: our folder's uint32 ids + mask, or a Megatron `.bin` (no mask: every token counts). */
interface TokenSource {
  readonly tokens: number;
  /** The token file. */
  readonly file: string;
  /** The integer type ids are stored in and the largest id it holds. */
  readonly idType: { name: string; max: number };
  /** Reads `count` ids from token `start` into `ids` and, when the source has one, the loss mask into `mask`. */
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void;
  /** The first token whose id is outside [0, limit), or undefined (one pass over the file). */
  firstIdOutside(limit: number): { token: number; id: number } | undefined;
  /** Names the document (and sequence, where the format has them) holding token `token`, for an error message. */
  where(token: number): string;
  close(): void;
}

class FolderSource implements TokenSource {
  readonly idType = { name: 'uint32', max: 0xffffffff };
  constructor(
    readonly tokens: number,
    readonly file: string,
    private readonly fdIds: number,
    private readonly fdMask: number,
    /** The id that separates documents (every document of a packed folder ends with it). */
    private readonly eod: number | undefined,
  ) {}
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void {
    const b = Buffer.alloc(count * 4);
    readSync(this.fdIds, b, 0, b.length, start * 4);
    for (let i = 0; i < count; i++) ids[i] = b.readUInt32LE(i * 4);
    readSync(this.fdMask, mask, 0, count, start);
  }
  /** Calls `each(start, view, n)` for every chunk of ids up to token `end`; stops early when it returns true. */
  private chunks(end: number, each: (start: number, view: Uint32Array, n: number) => boolean): void {
    const items = SCAN_BYTES / 4;
    const view = new Uint32Array(items);
    const bytes = new Uint8Array(view.buffer);
    for (let start = 0; start < end; start += items) {
      const n = Math.min(items, end - start);
      const got = readSync(this.fdIds, bytes, 0, n * 4, start * 4);
      if (got !== n * 4)
        throw new YuanError('input', `${this.file}: short read at token ${start} (file changed while reading?)`);
      if (each(start, view, n)) return;
    }
  }
  firstIdOutside(limit: number): { token: number; id: number } | undefined {
    let found: { token: number; id: number } | undefined;
    this.chunks(this.tokens, (start, view, n) => {
      const at = firstOutside(view, n, limit, false);
      if (at >= 0) found = { token: start + at, id: view[at] };
      return found !== undefined;
    });
    return found;
  }
  where(token: number): string {
    if (this.eod === undefined) return `token ${token}`;
    // documents are separated by <eod>: the document of a token is the number of <eod>s before it
    let document = 0;
    const eod = this.eod;
    this.chunks(token, (_start, view, n) => {
      for (let i = 0; i < n; i++) if (view[i] === eod) document++;
      return false;
    });
    return `document ${document} (token ${token})`;
  }
  close(): void {
    closeSync(this.fdIds);
    closeSync(this.fdMask);
  }
}

class MegatronSource implements TokenSource {
  readonly idType: { name: string; max: number };
  constructor(private readonly ds: IndexedDataset) {
    this.idType = MEGATRON_DTYPES[ds.header.dtype];
  }
  get tokens(): number {
    return this.ds.tokens;
  }
  get file(): string {
    return `${this.ds.prefix}.bin`;
  }
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void {
    this.ds.read(start, count, ids);
    mask.fill(1, 0, count);
  }
  firstIdOutside(limit: number): { token: number; id: number } | undefined {
    return this.ds.firstIdOutside(limit);
  }
  where(token: number): string {
    const { sequence, document } = this.ds.locate(token);
    return `document ${document} (sequence ${sequence}, token ${token})`;
  }
  close(): void {
    this.ds.close();
  }
}

/** One split of a packed data folder (or of a Megatron indexed dataset), read window by window. */
export class PackedSplit {
  private constructor(
    readonly name: SplitName,
    readonly tokens: number,
    private readonly source: TokenSource,
  ) {}

  /** Opens a split of the folder (or the Megatron dataset); a missing or inconsistent file is an error naming it. */
  static open(dir: string, index: PackedIndex, name: SplitName): PackedSplit {
    const info = index.splits[name];
    if (index.format === 'megatron-mmidx') {
      const ds = IndexedDataset.open(info.file.replace(/\.bin$/, ''));
      return new PackedSplit(name, ds.tokens, new MegatronSource(ds));
    }
    const ids = path.join(dir, info.file);
    const mask = path.join(dir, info.mask);
    for (const f of [ids, mask])
      if (!existsSync(f))
        throw new YuanError('input', `${dir}: missing ${path.basename(f)} (not a complete packed data folder)`);
    const fdIds = openSync(ids, 'r');
    const fdMask = openSync(mask, 'r');
    const tokens = fstatSync(fdIds).size / 4;
    if (tokens !== info.tokens || fstatSync(fdMask).size !== info.tokens) {
      closeSync(fdIds);
      closeSync(fdMask);
      throw new YuanError(
        'input',
        `${dir}: ${name} files hold ${tokens} tokens but index.json says ${info.tokens} (truncated or foreign data)`,
      );
    }
    return new PackedSplit(name, tokens, new FolderSource(tokens, ids, fdIds, fdMask, index.special?.eod));
  }

  /** The token file this split reads (`train.bin`, or a Megatron `PREFIX.bin`). */
  get file(): string {
    return this.source.file;
  }

  /** The integer type the split's ids are stored in (`uint32` for a packed folder, a Megatron dtype) and its largest id. */
  get idType(): { name: string; max: number } {
    return this.source.idType;
  }

  /**
   * Checks, once before training, that every token id is inside the model's vocabulary [0, vocabSize): one
   * sequential pass over the token file with a typed-array loop. An id outside is an error ('input') naming the file,
   * the document (the `.idx` document index of a Megatron dataset, the count of `<eod>` separators before it in a
   * packed folder), the token and the id, on one line.
   */
  checkIds(vocabSize: number): void {
    const bad = this.source.firstIdOutside(vocabSize);
    if (!bad) return;
    throw new YuanError(
      'input',
      `${this.source.file}: ${this.source.where(bad.token)} holds token id ${bad.id}, outside the model's vocabulary of ${vocabSize} (ids 0..${vocabSize - 1}): the data was tokenized for another vocabulary or is corrupt`,
    );
  }

  /** Number of windows of `seqLength + 1` tokens (consecutive windows share one token). */
  windows(seqLength: number): number {
    return Math.max(0, Math.floor((this.tokens - 1) / seqLength));
  }

  /** Reads window `w` into row `row` of `batch`, with positions restarting after `eod` if `resetAfter` is given. */
  readWindow(w: number, batch: Batch, row: number, resetAfter?: number): void {
    const t = batch.seqLength;
    const ids = new Int32Array(t + 1);
    const mask = new Uint8Array(t + 1);
    this.source.read(w * t, t + 1, ids, mask);
    let pos = 0;
    for (let i = 0; i < t; i++) {
      const id = ids[i];
      batch.ids[row * t + i] = id;
      batch.targets[row * t + i] = ids[i + 1];
      batch.mask[row * t + i] = mask[i + 1];
      if (i > 0 && resetAfter !== undefined && batch.ids[row * t + i - 1] === resetAfter) pos = 0;
      batch.positions[row * t + i] = pos++;
    }
  }

  /** Closes the files. */
  close(): void {
    this.source.close();
  }
}

/** YUAN 2.0's special ids (`<eod>` 77185, `<sep>` 77187, `<pad>` 77188); never assumed for data (give `--eod-id 77185`). */
export const YUAN_SPECIAL_IDS = { eod: 77185, sep: 77187, pad: 77188 } as const;

/**
 * Describes a Megatron indexed dataset `PREFIX.bin` + `PREFIX.idx` as a packed index whose train split is the whole
 * dataset (no valid split, every token in the loss). Tokenizer, vocabulary and special ids come from an `index.json`
 * of `yuan data prepare` in the same folder; without one they are unknown (`special` absent, vocabulary 0), and the
 * end-of-document id must be given (`train.eodId`, see `positionResetId`).
 */
function megatronIndex(prefix: string): PackedIndex {
  const ds = IndexedDataset.open(prefix);
  const tokens = ds.tokens;
  const documents = ds.header.sequences;
  ds.close();
  let meta: Pick<PackedIndex, 'tokenizer' | 'vocabSize' | 'special'> = {
    tokenizer: { name: 'unknown (Megatron dataset)' },
    vocabSize: 0,
  };
  const beside = path.join(path.dirname(prefix), 'index.json');
  if (existsSync(beside)) {
    try {
      const idx = JSON.parse(readFileSync(beside, 'utf8')) as PackedIndex;
      if (idx.format === 'yuan-packed-1')
        meta = { tokenizer: idx.tokenizer, vocabSize: idx.vocabSize, special: idx.special };
    } catch {
      // not ours: keep the defaults
    }
  }
  if (!(tokens > 0)) throw new YuanError('input', `${prefix}: the Megatron dataset holds no tokens`);
  return {
    format: 'megatron-mmidx',
    ...meta,
    splits: {
      train: { tokens, documents, file: `${prefix}.bin`, mask: '' },
      valid: { tokens: 0, documents: 0, file: '', mask: '' },
    },
    sftPairs: 0,
  };
}

/**
 * The id after which positions restart when training on `data` (described by `index`): undefined when
 * `train.resetPositionIds` is off, else `train.eodId` when given (`--eod-id`), else the `<eod>` of the data's
 * `index.json`. A Megatron dataset with no `index.json` beside it and no `eodId` is a usage error: its end-of-document
 * id is unknown and guessing one would leave positions unreset at every real document end.
 */
export function positionResetId(
  index: PackedIndex,
  train: { resetPositionIds: boolean; eodId?: number },
  data: string,
): number | undefined {
  if (!train.resetPositionIds) return undefined;
  const eod = train.eodId ?? index.special?.eod;
  if (eod === undefined) {
    throw new YuanError(
      'usage',
      `${data}: a Megatron dataset with no index.json beside it does not say which id ends a document: pass --eod-id N (--set train.eodId=N; YUAN 2.0's <eod> is ${YUAN_SPECIAL_IDS.eod}), or --set train.resetPositionIds=false`,
    );
  }
  return eod;
}

/**
 * Reads and checks `index.json` of a packed data folder (written by `yuan data prepare`); a path `PREFIX` with
 * `PREFIX.bin` + `PREFIX.idx` beside it is a Megatron indexed dataset (Megatron's `--data-path` convention).
 */
export function readPackedIndex(dir: string): PackedIndex {
  const file = path.join(dir, 'index.json');
  if (!existsSync(dir) && existsSync(`${dir}.idx`)) return megatronIndex(dir);
  if (!existsSync(dir)) throw new YuanError('input', `data folder not found: ${dir}`);
  if (!existsSync(file)) throw new YuanError('input', `${dir}: no index.json (prepare it with \`yuan data prepare\`)`);
  let index: PackedIndex;
  try {
    index = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new YuanError('input', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (index.format !== 'yuan-packed-1')
    throw new YuanError('input', `${file}: format ${JSON.stringify(index.format)}; expected "yuan-packed-1"`);
  if (!(index.splits?.train?.tokens > 0)) throw new YuanError('input', `${dir}: the train split is empty`);
  return index;
}

function emptyBatch(rows: number, seqLength: number): Batch {
  const n = rows * seqLength;
  return {
    rows,
    seqLength,
    ids: new Int32Array(n),
    targets: new Int32Array(n),
    mask: new Float32Array(n),
    positions: new Int32Array(n),
  };
}

/**
 * Draws training batches: each epoch visits every window once in an order shuffled by a seeded RNG. Its position
 * (epoch, cursor, RNG state of the epoch) is saved in checkpoints, so a resumed run sees the same batches.
 */
export class BatchLoader {
  private readonly rng: Rng;
  private order: Uint32Array = new Uint32Array(0);
  private pos: DataPosition;

  constructor(
    private readonly split: PackedSplit,
    readonly seqLength: number,
    readonly rows: number,
    seed: number,
    private readonly resetAfter?: number,
  ) {
    const n = split.windows(seqLength);
    if (n < 1) {
      throw new YuanError(
        'input',
        `sequence length ${seqLength} is larger than the data: the ${split.name} split has ${split.tokens} tokens (need at least ${seqLength + 1})`,
      );
    }
    this.rng = new Rng(seed);
    this.pos = { epoch: 0, cursor: 0, epochRng: this.rng.state() };
    this.shuffle();
  }

  private shuffle(): void {
    const n = this.split.windows(this.seqLength);
    this.rng.setState(this.pos.epochRng);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
    }
    this.order = order;
  }

  /** The position to save in a checkpoint. */
  position(): DataPosition {
    return { epoch: this.pos.epoch, cursor: this.pos.cursor, epochRng: [...this.pos.epochRng] };
  }

  /** Continues from a saved position. */
  seek(p: DataPosition): void {
    this.pos = { epoch: p.epoch, cursor: p.cursor, epochRng: [...p.epochRng] };
    this.shuffle();
  }

  /** The next batch of `rows` windows. */
  next(): Batch {
    const batch = emptyBatch(this.rows, this.seqLength);
    for (let r = 0; r < this.rows; r++) {
      if (this.pos.cursor >= this.order.length) {
        this.pos = { epoch: this.pos.epoch + 1, cursor: 0, epochRng: this.rng.state() };
        this.shuffle();
      }
      this.split.readWindow(this.order[this.pos.cursor++], batch, r, this.resetAfter);
    }
    return batch;
  }
}

/** The fixed evaluation batches of a split: its first `count × rows` windows in order (wrapping if there are fewer). */
export function evalBatches(
  split: PackedSplit,
  seqLength: number,
  rows: number,
  count: number,
  resetAfter?: number,
): Batch[] {
  const n = split.windows(seqLength);
  if (n < 1) return [];
  const out: Batch[] = [];
  let w = 0;
  for (let b = 0; b < Math.min(count, Math.ceil(n / rows)); b++) {
    const batch = emptyBatch(rows, seqLength);
    for (let r = 0; r < rows; r++) split.readWindow(w++ % n, batch, r, resetAfter);
    out.push(batch);
  }
  return out;
}
