import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { YuanError, type SpecialIds, commitStaged, stagingPath } from '@yuan/core';
import { bestFittingDtype, IndexedDatasetWriter } from './megatron.js';

/** Which split a packed file belongs to. */
export type SplitName = 'train' | 'valid';

/** One split of a packed data folder. */
export interface SplitInfo {
  tokens: number;
  documents: number;
  /** Token file: uint32 little-endian ids. */
  file: string;
  /** Loss-mask file: one byte per token, 1 where predicting that token counts in the loss. */
  mask: string;
}

/** `index.json` of a packed data folder (or, with format `megatron-mmidx`, a Megatron dataset described as one). */
export interface PackedIndex {
  format: 'yuan-packed-1' | 'megatron-mmidx';
  tokenizer: { name: string; path?: string };
  vocabSize: number;
  /**
   * The special ids the data was packed with (every document ends with `special.eod`). Absent only for a Megatron
   * dataset with no `index.json` of ours beside it, whose end-of-document id must then be given (`train.eodId`).
   */
  special?: SpecialIds;
  splits: Record<SplitName, SplitInfo>;
  /** SFT pairs that were packed (their prompt is loss-masked). */
  sftPairs: number;
  /**
   * The same tokens as Megatron indexed datasets in the folder (`train_text_document.bin/.idx`, ...): train with
   * `--data DIR/train_text_document` here or `--data-path` in Megatron/YUAN. No loss mask (YUAN masks SFT prompts
   * from `<sep>` at training time). Absent in folders written before this field.
   */
  megatron?: { dtype: number; prefixes: Partial<Record<SplitName, string>> };
}

class SplitWriter {
  tokens = 0;
  documents = 0;
  private readonly ids: WriteStream;
  private readonly mask: WriteStream;

  constructor(
    dir: string,
    readonly info: Pick<SplitInfo, 'file' | 'mask'>,
    readonly megatron?: IndexedDatasetWriter,
  ) {
    this.ids = createWriteStream(path.join(dir, info.file));
    this.mask = createWriteStream(path.join(dir, info.mask));
  }

  async write(ids: Uint32Array, mask: Uint8Array): Promise<void> {
    this.megatron?.add(ids);
    // uint32 little-endian (every platform Node runs on is little-endian; the bytes are checked by the tests)
    const buf = Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
    const okIds = this.ids.write(buf);
    const okMask = this.mask.write(mask);
    this.tokens += ids.length;
    this.documents += 1;
    const waits: Promise<void>[] = [];
    if (!okIds) waits.push(new Promise<void>((r) => this.ids.once('drain', () => r())));
    if (!okMask) waits.push(new Promise<void>((r) => this.mask.once('drain', () => r())));
    await Promise.all(waits);
  }

  async close(): Promise<SplitInfo> {
    await Promise.all(
      [this.ids, this.mask].map(
        (s) => new Promise<void>((res, rej) => s.end((e?: Error | null) => (e ? rej(e) : res()))),
      ),
    );
    return { ...this.info, tokens: this.tokens, documents: this.documents };
  }
}

/**
 * Streams documents into a packed data folder: token ids (uint32) and a loss mask per split, each document ended by
 * `<eod>`. Every k-th document (k = 1/validFraction, spread evenly) goes to the valid split. The folder is written
 * under a temporary name and renamed into place by `finish`.
 */
export class PackWriter {
  private readonly tmp: string;
  private writers?: Record<SplitName, SplitWriter>;
  private count = 0;
  private sft = 0;

  private constructor(
    readonly dir: string,
    private readonly meta: {
      tokenizer: { name: string; path?: string };
      vocabSize: number;
      special: SpecialIds;
      validFraction: number;
      /** Also write Megatron indexed datasets (`SPLIT_text_document.bin/.idx`). Default true. */
      megatron?: boolean;
    },
  ) {
    this.tmp = stagingPath(dir.replace(/\/+$/, ''));
  }

  /** Starts writing a packed folder at `dir`. */
  static async create(dir: string, meta: PackWriter['meta']): Promise<PackWriter> {
    if (!(meta.validFraction >= 0 && meta.validFraction < 1)) {
      throw new YuanError('usage', `valid fraction ${meta.validFraction} must be in [0, 1)`);
    }
    const w = new PackWriter(dir, meta);
    await rm(w.tmp, { recursive: true, force: true });
    await mkdir(w.tmp, { recursive: true });
    const mm = (split: SplitName) =>
      meta.megatron === false
        ? undefined
        : new IndexedDatasetWriter(path.join(w.tmp, `${split}_text_document`), bestFittingDtype(meta.vocabSize));
    w.writers = {
      train: new SplitWriter(w.tmp, { file: 'train.bin', mask: 'train.mask' }, mm('train')),
      valid: new SplitWriter(w.tmp, { file: 'valid.bin', mask: 'valid.mask' }, mm('valid')),
    };
    return w;
  }

  private split(): SplitName {
    const f = this.meta.validFraction;
    const i = this.count++;
    return Math.floor((i + 1) * f) > Math.floor(i * f) ? 'valid' : 'train';
  }

  /** Adds a pretraining document (ids without `<eod>`; it is appended). Empty documents are skipped. */
  async addDocument(ids: ArrayLike<number>): Promise<void> {
    if (ids.length === 0) return;
    const all = new Uint32Array(ids.length + 1);
    all.set(ids);
    all[ids.length] = this.meta.special.eod;
    await this.writers![this.split()].write(all, new Uint8Array(all.length).fill(1));
  }

  /** Adds an SFT pair as `prompt<sep>answer<eod>`; predicting prompt tokens is masked, `<sep>`, the answer and `<eod>` count. */
  async addPair(prompt: ArrayLike<number>, answer: ArrayLike<number>): Promise<void> {
    const sep = this.meta.special.sep;
    if (sep === undefined)
      throw new YuanError('input', 'this tokenizer has no <sep> token; it cannot pack prompt/answer pairs');
    const all = new Uint32Array(prompt.length + answer.length + 2);
    all.set(prompt);
    all[prompt.length] = sep;
    all.set(answer, prompt.length + 1);
    all[all.length - 1] = this.meta.special.eod;
    const mask = new Uint8Array(all.length).fill(1);
    mask.fill(0, 0, prompt.length);
    this.sft += 1;
    await this.writers![this.split()].write(all, mask);
  }

  /** Closes the files, writes index.json and moves the folder into place. An input with no tokens is an error. */
  async finish(): Promise<PackedIndex> {
    const train = await this.writers!.train.close();
    const valid = await this.writers!.valid.close();
    if (train.tokens === 0) {
      for (const w of Object.values(this.writers!)) w.megatron?.abort();
      await rm(this.tmp, { recursive: true, force: true });
      throw new YuanError('input', 'the input has no documents with text: nothing to train on');
    }
    const index: PackedIndex = {
      format: 'yuan-packed-1',
      tokenizer: this.meta.tokenizer,
      vocabSize: this.meta.vocabSize,
      special: this.meta.special,
      splits: { train, valid },
      sftPairs: this.sft,
    };
    if (this.meta.megatron !== false) {
      const prefixes: Partial<Record<SplitName, string>> = {};
      for (const name of ['train', 'valid'] as const) {
        const m = this.writers![name].megatron!;
        if (this.writers![name].documents > 0) {
          m.finish();
          prefixes[name] = `${name}_text_document`;
        } else m.abort();
      }
      index.megatron = { dtype: bestFittingDtype(this.meta.vocabSize), prefixes };
    }
    await writeFile(path.join(this.tmp, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
    await commitStaged(this.tmp, this.dir);
    return index;
  }

  /** Removes the partial folder (after an error). */
  async abort(): Promise<void> {
    await Promise.all(Object.values(this.writers ?? {}).map((w) => w.close().catch(() => undefined)));
    for (const w of Object.values(this.writers ?? {})) w.megatron?.abort();
    await rm(this.tmp, { recursive: true, force: true });
  }
}
