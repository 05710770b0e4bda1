import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { Rng, YuanError } from '@yuan/core';
import { IndexedDataset } from './megatron.js';
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
  /** Reads `count` ids from token `start` into `ids` and, when the source has one, the loss mask into `mask`. */
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void;
  close(): void;
}

class FolderSource implements TokenSource {
  constructor(
    readonly tokens: number,
    private readonly fdIds: number,
    private readonly fdMask: number,
  ) {}
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void {
    const b = Buffer.alloc(count * 4);
    readSync(this.fdIds, b, 0, b.length, start * 4);
    for (let i = 0; i < count; i++) ids[i] = b.readUInt32LE(i * 4);
    readSync(this.fdMask, mask, 0, count, start);
  }
  close(): void {
    closeSync(this.fdIds);
    closeSync(this.fdMask);
  }
}

class MegatronSource implements TokenSource {
  constructor(private readonly ds: IndexedDataset) {}
  get tokens(): number {
    return this.ds.tokens;
  }
  read(start: number, count: number, ids: Int32Array, mask: Uint8Array): void {
    this.ds.read(start, count, ids);
    mask.fill(1, 0, count);
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
    for (const f of [ids, mask]) if (!existsSync(f)) throw new YuanError('input', `${dir}: missing ${path.basename(f)} (not a complete packed data folder)`);
    const fdIds = openSync(ids, 'r');
    const fdMask = openSync(mask, 'r');
    const tokens = fstatSync(fdIds).size / 4;
    if (tokens !== info.tokens || fstatSync(fdMask).size !== info.tokens) {
      closeSync(fdIds);
      closeSync(fdMask);
      throw new YuanError('input', `${dir}: ${name} files hold ${tokens} tokens but index.json says ${info.tokens} (truncated or foreign data)`);
    }
    return new PackedSplit(name, tokens, new FolderSource(tokens, fdIds, fdMask));
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

/** YUAN 2.0's special ids (`<eod>` 77185, `<sep>` 77187, `<pad>` 77188), assumed for a Megatron dataset with no index.json beside it. */
export const YUAN_SPECIAL_IDS = { eod: 77185, sep: 77187, pad: 77188 } as const;

/**
 * Describes a Megatron indexed dataset `PREFIX.bin` + `PREFIX.idx` as a packed index whose train split is the whole
 * dataset (no valid split, every token in the loss). Tokenizer, vocabulary and special ids come from an `index.json`
 * of `yuan data prepare` in the same folder, else YUAN 2.0's (vocabulary unchecked).
 */
function megatronIndex(prefix: string): PackedIndex {
  const ds = IndexedDataset.open(prefix);
  const tokens = ds.tokens;
  const documents = ds.header.sequences;
  ds.close();
  let meta: Pick<PackedIndex, 'tokenizer' | 'vocabSize' | 'special'> = { tokenizer: { name: 'unknown (Megatron dataset)' }, vocabSize: 0, special: { ...YUAN_SPECIAL_IDS } };
  const beside = path.join(path.dirname(prefix), 'index.json');
  if (existsSync(beside)) {
    try {
      const idx = JSON.parse(readFileSync(beside, 'utf8')) as PackedIndex;
      if (idx.format === 'yuan-packed-1') meta = { tokenizer: idx.tokenizer, vocabSize: idx.vocabSize, special: idx.special };
    } catch {
      // not ours: keep the defaults
    }
  }
  if (!(tokens > 0)) throw new YuanError('input', `${prefix}: the Megatron dataset holds no tokens`);
  return {
    format: 'megatron-mmidx',
    ...meta,
    splits: { train: { tokens, documents, file: `${prefix}.bin`, mask: '' }, valid: { tokens: 0, documents: 0, file: '', mask: '' } },
    sftPairs: 0,
  };
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
  if (index.format !== 'yuan-packed-1') throw new YuanError('input', `${file}: format ${JSON.stringify(index.format)}; expected "yuan-packed-1"`);
  if (!(index.splits?.train?.tokens > 0)) throw new YuanError('input', `${dir}: the train split is empty`);
  return index;
}

function emptyBatch(rows: number, seqLength: number): Batch {
  const n = rows * seqLength;
  return { rows, seqLength, ids: new Int32Array(n), targets: new Int32Array(n), mask: new Float32Array(n), positions: new Int32Array(n) };
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
      throw new YuanError('input', `sequence length ${seqLength} is larger than the data: the ${split.name} split has ${split.tokens} tokens (need at least ${seqLength + 1})`);
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
export function evalBatches(split: PackedSplit, seqLength: number, rows: number, count: number, resetAfter?: number): Batch[] {
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
