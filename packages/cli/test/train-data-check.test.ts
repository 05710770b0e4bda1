import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IndexedDatasetWriter } from '@yuan/data';
import { repoRoot, yuan, yuanProcess } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-data-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tiny = [
  '--preset',
  'tiny-lfa',
  '--set',
  'model.hiddenSize=32',
  '--set',
  'model.numLayers=2',
  '--set',
  'model.ffnSize=64',
  '--set',
  'train.seqLength=16',
  '--set',
  'train.microBatchSize=2',
];

/** A Megatron dataset (no index.json beside it) of 12 documents of 40 ids below 250, with `bad` at document 7, id 3. */
function megatron(name: string, dtype: number, bad?: number): string {
  const prefix = path.join(tmp, name);
  const w = new IndexedDatasetWriter(prefix, dtype);
  for (let d = 0; d < 12; d++)
    w.add(Array.from({ length: 40 }, (_, i) => (d === 7 && i === 3 && bad !== undefined ? bad : (i * 7 + d) % 250)));
  w.finish();
  return prefix;
}

/** Runs the built `yuan train` (or another command) and returns the exit code and the stderr lines. */
function run(...args: string[]): { code: number; lines: string[] } {
  const r = yuanProcess(...args);
  return { code: r.code, lines: r.err.split('\n').filter((l) => l.trim() !== '') };
}

let good: string;
let packed: string;
beforeAll(async () => {
  if (!existsSync(path.join(repoRoot, 'packages/cli/dist/bin.js')))
    throw new Error('build the CLI first: cd packages/cli && npx tsup');
  good = megatron('good', 8);
  const text = Array.from({ length: 20 }, (_, i) => `Paragraph ${i}: a small corpus for a small model.`).join('\n\n');
  writeFileSync(path.join(tmp, 'corpus.txt'), text);
  packed = path.join(tmp, 'packed');
  const r = await yuan(
    'data',
    'prepare',
    '--input',
    path.join(tmp, 'corpus.txt'),
    '--tokenizer',
    'bytes',
    '--output',
    packed,
    '--valid-fraction',
    '0',
    '--no-megatron',
  );
  expect(r.code).toBe(0);
});

describe('yuan train: bad token data stops with one line before training starts', () => {
  it('an id outside the vocabulary in a Megatron .bin names the file, the document and the id (exit 1)', () => {
    const bad = megatron('bad', 4, 77185);
    const r = run('train', ...tiny, '--data', bad, '--eod-id', '249', '--steps', '2', '--out', path.join(tmp, 'o-bad'));
    expect(r).toEqual({
      code: 1,
      lines: [
        `error: ${bad}.bin: document 7 (sequence 7, token 283) holds token id 77185, outside the model's vocabulary of 264 (ids 0..263): the data was tokenized for another vocabulary or is corrupt`,
      ],
    });
    expect(existsSync(path.join(tmp, 'o-bad', 'metrics.jsonl'))).toBe(false);
  });

  it("an id outside the vocabulary in yuan's packed folder names the document by its <eod> separators", () => {
    const file = path.join(packed, 'train.bin');
    const ids = readFileSync(file);
    const eods = [...Array(ids.length / 4).keys()].filter((i) => ids.readUInt32LE(i * 4) === 256);
    const at = eods[2] + 5;
    const saved = ids.readUInt32LE(at * 4);
    ids.writeUInt32LE(9999, at * 4);
    writeFileSync(file, ids);
    try {
      const r = run('train', ...tiny, '--data', packed, '--steps', '2', '--out', path.join(tmp, 'o-packed'));
      expect(r).toEqual({
        code: 1,
        lines: [
          `error: ${file}: document 3 (token ${at}) holds token id 9999, outside the model's vocabulary of 264 (ids 0..263): the data was tokenized for another vocabulary or is corrupt`,
        ],
      });
      // data-parallel ranks and the ablation read the same data: the same single line, before any rank or variant starts
      expect(
        run(
          'train',
          ...tiny,
          '--data',
          packed,
          '--steps',
          '2',
          '--dp',
          '2',
          '--microbatches',
          '2',
          '--out',
          path.join(tmp, 'o-dp'),
        ),
      ).toEqual(r);
      expect(
        run(
          'experiment',
          'ablation',
          ...tiny,
          '--variants',
          'mha,lfa',
          '--data',
          packed,
          '--steps',
          '2',
          '--out',
          path.join(tmp, 'o-abl'),
        ),
      ).toEqual(r);
    } finally {
      ids.writeUInt32LE(saved, at * 4);
      writeFileSync(file, ids);
    }
  });

  it('a Megatron prefix without index.json is refused with a line that says to pass --eod-id (exit 2)', () => {
    const r = run('train', ...tiny, '--data', good, '--steps', '2', '--out', path.join(tmp, 'o-noeod'));
    expect(r).toEqual({
      code: 2,
      lines: [
        `error: ${good}: a Megatron dataset with no index.json beside it does not say which id ends a document: pass --eod-id N (--set train.eodId=N; YUAN 2.0's <eod> is 77185), or --set train.resetPositionIds=false`,
      ],
    });
  });

  it('with --eod-id (or --set train.eodId) it trains', () => {
    for (const flag of [
      ['--eod-id', '249'],
      ['--set', 'train.eodId=249'],
    ]) {
      const r = yuanProcess(
        'train',
        ...tiny,
        '--data',
        good,
        '--steps',
        '2',
        '--out',
        path.join(tmp, 'o-eod'),
        ...flag,
      );
      expect([r.code, r.err.split('\n').filter((l) => l.startsWith('error'))]).toEqual([0, []]);
      expect(r.out).toMatch(/^trained 2 steps/);
    }
  });

  it('an end-of-document id the dtype cannot hold or outside the vocabulary is a usage error', () => {
    const out = path.join(tmp, 'o-eodbad');
    expect(
      run(
        'train',
        ...tiny,
        '--data',
        good,
        '--eod-id',
        '65536',
        '--set',
        'model.vocabSize=70000',
        '--steps',
        '2',
        '--out',
        out,
      ),
    ).toEqual({
      code: 2,
      lines: [
        `error: the end-of-document id 65536 (--eod-id, train.eodId) cannot occur in ${good}.bin: its uint16 ids are 0..65535`,
      ],
    });
    expect(run('train', ...tiny, '--data', good, '--eod-id', '77185', '--steps', '2', '--out', out)).toEqual({
      code: 2,
      lines: [
        "error: the end-of-document id 77185 (--eod-id, train.eodId) is outside the model's vocabulary of 264 (ids 0..263)",
      ],
    });
    expect(run('train', ...tiny, '--data', good, '--eod-id', 'x', '--steps', '2', '--out', out)).toEqual({
      code: 2,
      lines: ['error: --eod-id "x" is not an integer >= 0'],
    });
  });
});
