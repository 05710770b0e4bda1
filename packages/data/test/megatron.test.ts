import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BatchLoader,
  IndexedDataset,
  IndexedDatasetWriter,
  PackedSplit,
  PackWriter,
  prepareWorkersForInput,
  readPackedIndex,
} from '../src/index.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-megatron-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An .idx built byte by byte from Megatron's layout, independent of the writer under test. */
function handIdx(dtype: number, sizes: number[], pointers: number[], docIdx: number[]): Buffer {
  const head = Buffer.alloc(34);
  head.write('MMIDIDX\x00\x00', 0, 'latin1');
  head.writeBigUInt64LE(1n, 9);
  head.writeUInt8(dtype, 17);
  head.writeBigUInt64LE(BigInt(sizes.length), 18);
  head.writeBigUInt64LE(BigInt(docIdx.length), 26);
  const s = Buffer.alloc(sizes.length * 4);
  sizes.forEach((v, i) => s.writeInt32LE(v, i * 4));
  const p = Buffer.alloc(pointers.length * 8);
  pointers.forEach((v, i) => p.writeBigInt64LE(BigInt(v), i * 8));
  const d = Buffer.alloc(docIdx.length * 8);
  docIdx.forEach((v, i) => d.writeBigInt64LE(BigInt(v), i * 8));
  return Buffer.concat([head, s, p, d]);
}

describe('Megatron indexed dataset (.bin + .idx, MMIDIDX)', () => {
  it('reads a hand-built file in the exact layout (int32, as YUAN writes it; document index [0] only)', () => {
    const prefix = path.join(tmp, 'hand');
    const seqs = [
      [77185, 5, 100000],
      [7, 8],
      [9, 77185],
    ];
    const bin = Buffer.alloc(7 * 4);
    seqs.flat().forEach((v, i) => bin.writeInt32LE(v, i * 4));
    writeFileSync(`${prefix}.bin`, bin);
    writeFileSync(`${prefix}.idx`, handIdx(4, [3, 2, 2], [0, 12, 20], [0]));
    const ds = IndexedDataset.open(prefix);
    expect(ds.header).toEqual({ dtype: 4, itemBytes: 4, sequences: 3, documents: 1 });
    expect(ds.tokens).toBe(7);
    expect([0, 1, 2].map((i) => ds.sequence(i))).toEqual(seqs);
    expect(ds.documentIndex()).toEqual([0]);
    ds.close();
    // `yuan train --data PREFIX` reads it as a train split; with no index.json beside it the special ids are unknown
    // (`--eod-id 77185` gives YUAN's <eod>)
    const index = readPackedIndex(prefix);
    expect(index).toMatchObject({
      format: 'megatron-mmidx',
      splits: { train: { tokens: 7, documents: 3 }, valid: { tokens: 0 } },
    });
    expect(index.special).toBeUndefined();
    const split = PackedSplit.open(prefix, index, 'train');
    const b = new BatchLoader(split, 3, 2, 0, 77185);
    const batch = b.next();
    split.close();
    const rows = [[...batch.ids.subarray(0, 3)], [...batch.ids.subarray(3)]].sort((x, y) => x[0] - y[0]);
    expect(rows).toEqual([
      [7, 8, 9],
      [77185, 5, 100000],
    ]);
  });

  it('reads a uint16 file with a Megatron document index', () => {
    const prefix = path.join(tmp, 'u16');
    const bin = Buffer.alloc(5 * 2);
    [1, 2, 3, 65535, 0].forEach((v, i) => bin.writeUInt16LE(v, i * 2));
    writeFileSync(`${prefix}.bin`, bin);
    writeFileSync(`${prefix}.idx`, handIdx(8, [3, 2], [0, 6], [0, 1, 2]));
    const ds = IndexedDataset.open(prefix);
    expect([ds.sequence(0), ds.sequence(1)]).toEqual([
      [1, 2, 3],
      [65535, 0],
    ]);
    expect(ds.documentIndex()).toEqual([0, 1, 2]);
    ds.close();
  });

  it('writes what it reads: yuan data prepare output read back token for token, identical to the folder', async () => {
    const dir = path.join(tmp, 'packed');
    const special = { eod: 256, sep: 257, pad: 258 };
    const w = await PackWriter.create(dir, {
      tokenizer: { name: 'bytes' },
      vocabSize: 259,
      special,
      validFraction: 0.25,
    });
    const docs = Array.from({ length: 12 }, (_, i) =>
      Array.from({ length: 3 + (i % 5) }, (_, j) => (i * 31 + j * 7) % 256),
    );
    for (const d of docs) await w.addDocument(d);
    await w.addPair([81, 63], [65]);
    const index = await w.finish();
    expect(index.megatron).toEqual({
      dtype: 8,
      prefixes: { train: 'train_text_document', valid: 'valid_text_document' },
    });
    for (const split of ['train', 'valid'] as const) {
      const ds = IndexedDataset.open(path.join(dir, `${split}_text_document`));
      const folder = readFileSync(path.join(dir, `${split}.bin`));
      const ours = Array.from({ length: folder.length / 4 }, (_, i) => folder.readUInt32LE(i * 4));
      const theirs = new Int32Array(ds.tokens);
      ds.read(0, ds.tokens, theirs);
      expect([...theirs]).toEqual(ours);
      expect(ds.header.sequences).toBe(index.splits[split].documents);
      expect(ds.documentIndex()).toEqual(Array.from({ length: ds.header.sequences + 1 }, (_, i) => i));
      expect(ds.sequence(0).at(-1)).toBe(special.eod);
      ds.close();
    }
    // the tokenizer and special ids come from index.json beside the prefix
    expect(readPackedIndex(path.join(dir, 'train_text_document'))).toMatchObject({
      vocabSize: 259,
      special,
      tokenizer: { name: 'bytes' },
    });
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.includes('.partial-'))).toEqual([]);
  });

  it('one-line errors for a malformed .idx, a truncated .bin, a bad dtype; nothing half-written', async () => {
    const prefix = path.join(tmp, 'bad');
    const good = () => {
      const bin = Buffer.alloc(4 * 4);
      writeFileSync(`${prefix}.bin`, bin);
      writeFileSync(`${prefix}.idx`, handIdx(4, [2, 2], [0, 8], [0, 1, 2]));
    };
    const err = () => {
      try {
        IndexedDataset.open(prefix).close();
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    good();
    expect(err()).toBe('no error');
    writeFileSync(`${prefix}.idx`, Buffer.concat([Buffer.from('NOTANIDX!'), Buffer.alloc(40)]));
    expect(err()).toMatch(/^\S+bad\.idx is not a Megatron MMIDIDX index \(bad magic\)$/);
    good();
    truncateSync(`${prefix}.idx`, 50);
    expect(err()).toMatch(/bad\.idx: 50 bytes, but 2 sequences and 3 documents need 82 \(truncated or corrupt\)$/);
    good();
    truncateSync(`${prefix}.bin`, 10);
    expect(err()).toMatch(
      /bad\.bin: 10 bytes, but .* describes 4 tokens of 4 bytes \(16 bytes\): truncated or from another index$/,
    );
    good();
    writeFileSync(`${prefix}.idx`, handIdx(6, [2, 2], [0, 8], [0, 1, 2]));
    expect(err()).toMatch(/dtype code 6 is not an integer token type/);
    writeFileSync(`${prefix}.idx`, handIdx(4, [2, 2], [0, 12], [0, 1, 2]));
    expect(err()).toMatch(/sequence 1 starts at byte 12, not 8: only contiguous datasets are supported$/);
    for (const m of [err()]) expect(m.split('\n')).toHaveLength(1);
    rmSync(`${prefix}.bin`);
    expect(err()).toMatch(/bad\.bin not found/);
    // a writer that is aborted leaves nothing behind, under the real name or a temporary one
    const w = new IndexedDatasetWriter(path.join(tmp, 'aborted'), 8);
    w.add([1, 2, 3]);
    expect(() => w.add([70000])).toThrow(/^token id 70000 does not fit the Megatron dtype uint16$/);
    w.abort();
    expect(readdirSync(tmp).filter((f) => f.includes('aborted'))).toEqual([]);
    expect(existsSync(path.join(tmp, 'aborted.bin'))).toBe(false);
  });
});

describe('yuan data prepare default thread count', () => {
  it('uses one worker thread per 8 MB of input at most', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'yuan-prepare-workers-'));
    try {
      const file = (name: string, bytes: number) => {
        const f = path.join(dir, name);
        writeFileSync(f, '');
        truncateSync(f, bytes);
        return f;
      };
      const small = file('small.txt', 2e6);
      const big = file('big.txt', 20e6);
      expect(prepareWorkersForInput([small], 8)).toBe(1);
      expect(prepareWorkersForInput([big], 8)).toBe(2);
      expect(prepareWorkersForInput([big, big, small], 8)).toBe(5);
      expect(prepareWorkersForInput([big, big, small], 4)).toBe(4);
      expect(prepareWorkersForInput([path.join(dir, 'missing.txt')], 8)).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
