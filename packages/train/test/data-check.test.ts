import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig, YuanError, type YuanConfig } from '@yuan/core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BatchLoader,
  IndexedDatasetWriter,
  PackedSplit,
  PackWriter,
  positionResetId,
  readPackedIndex,
} from '@yuan/data';
import { checkTrainingData, trainConfig } from '../src/index.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-data-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function config(vocabSize = 264, train: Record<string, unknown> = {}): YuanConfig {
  return resolveConfig({
    model: { vocabSize, hiddenSize: 32, numLayers: 2, numHeads: 2, ffnSize: 64, maxPositions: 64 },
    attention: { name: 'mha', options: {} },
    train: { seqLength: 8, microBatchSize: 1, ...train },
  });
}

/** A Megatron dataset of `docs` (one sequence per document) in `dtype`, with no index.json beside it. */
function megatron(name: string, dtype: number, docs: number[][]): string {
  const dir = mkdtempSync(path.join(tmp, `${name}-`));
  const w = new IndexedDatasetWriter(path.join(dir, name), dtype);
  for (const d of docs) w.add(d);
  w.finish();
  return path.join(dir, name);
}

/** Runs `f` and returns the YuanError it throws (code and message), failing when it throws nothing or something else. */
function failure(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (!(e instanceof YuanError)) throw e;
    expect(e.message.split('\n')).toHaveLength(1);
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a YuanError, got none');
}

const docs = (n: number, len: number) =>
  Array.from({ length: n }, (_, d) => Array.from({ length: len }, (_, i) => (d * 13 + i * 7) % 250));

describe('token ids are checked against the vocabulary before training', () => {
  it('a Megatron prefix: names the .bin, the document, the sequence and the id (int32 as YUAN writes it)', () => {
    const bad = docs(6, 10);
    bad[4][3] = 77185;
    const prefix = megatron('yuan', 4, bad);
    const e = failure(() => checkTrainingData(config(264, { eodId: 249 }), prefix));
    expect(e).toEqual({
      code: 'input',
      message: `${prefix}.bin: document 4 (sequence 4, token 43) holds token id 77185, outside the model's vocabulary of 264 (ids 0..263): the data was tokenized for another vocabulary or is corrupt`,
    });
    // the same data fits a model with YUAN's vocabulary
    expect(() => checkTrainingData(config(135040, { eodId: 77185 }), prefix)).not.toThrow();
  });

  it('a document of several sequences is named by the .idx document index', () => {
    // hand-edit a writer's .idx so sequences 0-1 are document 0 and sequences 2-4 document 1
    const bad = docs(5, 4);
    bad[3][1] = 300;
    const prefix = megatron('grouped', 8, bad);
    const idx = readFileSync(`${prefix}.idx`);
    const head = 34 + 5 * 12;
    const grouped = Buffer.concat([idx.subarray(0, head), Buffer.alloc(3 * 8)]);
    grouped.writeBigUInt64LE(3n, 26);
    [0, 2, 5].forEach((v, i) => grouped.writeBigInt64LE(BigInt(v), head + i * 8));
    writeFileSync(`${prefix}.idx`, grouped);
    expect(failure(() => checkTrainingData(config(264, { eodId: 0 }), prefix)).message).toMatch(
      /grouped\.bin: document 1 \(sequence 3, token 13\) holds token id 300,/,
    );
  });

  it('negative ids of signed dtypes and ids of int64 files are found too', () => {
    // the writer refuses negative ids: store -3 as int16 at token 10 by hand
    const p16 = megatron('neg', 3, docs(3, 5));
    const bin = readFileSync(`${p16}.bin`);
    bin.writeInt16LE(-3, 10 * 2);
    writeFileSync(`${p16}.bin`, bin);
    expect(failure(() => checkTrainingData(config(264, { resetPositionIds: false }), p16)).message).toMatch(
      /neg\.bin: document 2 \(sequence 2, token 10\) holds token id -3, outside/,
    );
    const big = docs(3, 5);
    big[1][4] = 264;
    const p64 = megatron('i64', 5, big);
    expect(failure(() => checkTrainingData(config(264, { resetPositionIds: false }), p64)).message).toMatch(
      /i64\.bin: document 1 \(sequence 1, token 9\) holds token id 264, outside the model's vocabulary of 264 \(ids 0\.\.263\)/,
    );
    big[1][4] = 263;
    expect(() => checkTrainingData(config(264, { resetPositionIds: false }), megatron('i64ok', 5, big))).not.toThrow();
  });

  it("yuan's packed folder: the document is counted by its <eod> separators, in either split", async () => {
    const dir = path.join(tmp, 'packed');
    const special = { eod: 256, sep: 257, pad: 258 };
    const w = await PackWriter.create(dir, {
      tokenizer: { name: 'bytes' },
      vocabSize: 264,
      special,
      validFraction: 0.25,
      megatron: false,
    });
    for (const d of docs(8, 5)) await w.addDocument(d);
    const index = await w.finish();
    expect(index.splits.train.documents).toBe(6);
    expect(() => checkTrainingData(config(), dir)).not.toThrow();
    // every document is 5 ids + <eod>: token 6·3 + 2 is the third id of document 3
    const poke = (file: string, token: number, id: number) => {
      const b = readFileSync(file);
      b.writeUInt32LE(id, token * 4);
      writeFileSync(file, b);
    };
    poke(path.join(dir, 'train.bin'), 6 * 3 + 2, 5000);
    expect(failure(() => checkTrainingData(config(), dir))).toEqual({
      code: 'input',
      message: `${path.join(dir, 'train.bin')}: document 3 (token 20) holds token id 5000, outside the model's vocabulary of 264 (ids 0..263): the data was tokenized for another vocabulary or is corrupt`,
    });
    poke(path.join(dir, 'train.bin'), 6 * 3 + 2, 7);
    // a uint32 above 2^31 (a negative int32 once read) is reported as the stored value
    poke(path.join(dir, 'valid.bin'), 6 + 1, 0xfffffffe);
    expect(failure(() => checkTrainingData(config(), dir)).message).toMatch(
      /valid\.bin: document 1 \(token 7\) holds token id 4294967294, outside/,
    );
  });
});

describe('the end-of-document id of a Megatron dataset is asked for, never guessed', () => {
  const prefix = megatron('noindex', 8, docs(4, 6));

  it('with no index.json beside it, training refuses with a line that says to pass --eod-id', () => {
    const index = readPackedIndex(prefix);
    expect(index.special).toBeUndefined();
    const want = `${prefix}: a Megatron dataset with no index.json beside it does not say which id ends a document: pass --eod-id N (--set train.eodId=N; YUAN 2.0's <eod> is 77185), or --set train.resetPositionIds=false`;
    expect(failure(() => positionResetId(index, trainConfig(config()), prefix))).toEqual({
      code: 'usage',
      message: want,
    });
    expect(failure(() => checkTrainingData(config(), prefix))).toEqual({ code: 'usage', message: want });
    // without position resets no end-of-document id is needed
    expect(positionResetId(index, trainConfig(config(264, { resetPositionIds: false })), prefix)).toBeUndefined();
    expect(() => checkTrainingData(config(264, { resetPositionIds: false }), prefix)).not.toThrow();
  });

  it('with --eod-id (train.eodId) positions restart after that id', () => {
    const p = megatron('eod', 8, [
      [10, 11, 12, 200],
      [13, 14, 200],
      [15, 16, 17, 18],
    ]);
    const index = readPackedIndex(p);
    const tc = trainConfig(config(264, { eodId: 200, seqLength: 10 }));
    expect(() => checkTrainingData(config(264, { eodId: 200 }), p)).not.toThrow();
    const eod = positionResetId(index, tc, p);
    expect(eod).toBe(200);
    const split = PackedSplit.open(p, index, 'train');
    const batch = new BatchLoader(split, 10, 1, 0, eod).next();
    split.close();
    expect([...batch.ids]).toEqual([10, 11, 12, 200, 13, 14, 200, 15, 16, 17]);
    expect([...batch.positions]).toEqual([0, 1, 2, 3, 0, 1, 2, 0, 1, 2]);
    // train.eodId also wins over the <eod> of an index.json
    const packedIndex = { ...index, special: { eod: 12 } };
    expect(positionResetId(packedIndex, tc, p)).toBe(200);
    expect(positionResetId(packedIndex, trainConfig(config()), p)).toBe(12);
  });

  it('an id the dtype cannot hold or outside the vocabulary is an error, as is a negative or fractional one', () => {
    expect(failure(() => checkTrainingData(config(70000, { eodId: 65536 }), prefix))).toEqual({
      code: 'usage',
      message: `the end-of-document id 65536 (--eod-id, train.eodId) cannot occur in ${prefix}.bin: its uint16 ids are 0..65535`,
    });
    expect(failure(() => checkTrainingData(config(264, { eodId: 77185 }), prefix))).toEqual({
      code: 'usage',
      message:
        "the end-of-document id 77185 (--eod-id, train.eodId) is outside the model's vocabulary of 264 (ids 0..263)",
    });
    expect(() => checkTrainingData(config(264, { eodId: 263 }), prefix)).not.toThrow();
    expect(() => trainConfig(config(264, { eodId: -1 }))).toThrow(/train\.eodId = -1/);
    expect(() => trainConfig(config(264, { eodId: 2.5 }))).toThrow(/train\.eodId = 2\.5/);
  });
});
