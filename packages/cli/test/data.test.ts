import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexedDataset } from '@yuan/data';
import { shared, yuan } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bytes = (s: string) => [...Buffer.from(s)];
const u32 = (b: Buffer) => Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(i * 4));

describe('yuan data prepare: YUAN formats', () => {
  it('reads YUAN lines (<n> newlines, [SEP] and <sep> between prompt and answer) into prompt-masked SFT pairs and Megatron files', async () => {
    const file = path.join(tmp, 'yuan.txt');
    writeFileSync(
      file,
      ['<n>Q: 1+1?[SEP]2', 'line one<n>line two\u2583', '', '   ', 'Why?<sep>Because.<n>Done', '<n><n>'].join('\n'),
    );
    const out = path.join(tmp, 'yuan');
    const r = await yuan(
      'data',
      'prepare',
      '--input',
      file,
      '--format',
      'yuan',
      '--tokenizer',
      'bytes',
      '--output',
      out,
      '--valid-fraction',
      '0',
      '--workers',
      '1',
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^packed 3 documents \(2 prompt\/answer pairs\)/);
    const ids = u32(readFileSync(path.join(out, 'train.bin')));
    const mask = [...readFileSync(path.join(out, 'train.mask'))];
    const want = [
      ...bytes('Q: 1+1?'),
      257,
      ...bytes('2'),
      256,
      ...bytes('line one\nline two'),
      256,
      ...bytes('Why?'),
      257,
      ...bytes('Because.\nDone'),
      256,
    ];
    expect(ids).toEqual(want);
    const wantMask = [
      ...Array(7).fill(0),
      1,
      1,
      1,
      ...Array(18).fill(1),
      ...Array(4).fill(0),
      ...Array(1 + 13 + 1).fill(1),
    ];
    expect(mask).toEqual(wantMask);
    const ds = IndexedDataset.open(path.join(out, 'train_text_document'));
    expect([ds.sequence(0), ds.sequence(2)]).toEqual([want.slice(0, 10), want.slice(28)]);
    ds.close();
  });

  it('--workers 3 writes byte-identical files to --workers 1', async () => {
    const src = path.join(shared, 'datasets', 'tinyshakespeare', 'input.txt');
    const text = existsSync(src)
      ? readFileSync(src, 'utf8').slice(0, 300_000)
      : Array.from({ length: 3000 }, (_, i) => `para ${i}\nline ${i * 7}\n`).join('\n');
    const file = path.join(tmp, 'plain.txt');
    writeFileSync(file, text);
    const files = async (workers: string) => {
      const out = path.join(tmp, `w${workers}`);
      const r = await yuan(
        'data',
        'prepare',
        '--input',
        file,
        '--tokenizer',
        'bytes',
        '--output',
        out,
        '--workers',
        workers,
      );
      expect(r.code, r.err).toBe(0);
      return Object.fromEntries(
        readdirSync(out)
          .sort()
          .map((f) => [f, readFileSync(path.join(out, f)).toString('base64')]),
      );
    };
    const one = await files('1');
    const three = await files('3');
    expect(Object.keys(one)).toEqual([
      'index.json',
      'train.bin',
      'train.mask',
      'train_text_document.bin',
      'train_text_document.idx',
      'valid.bin',
      'valid.mask',
      'valid_text_document.bin',
      'valid_text_document.idx',
    ]);
    expect(three).toEqual(one);
  });

  it('yuan train --data PREFIX trains on a Megatron indexed dataset', async () => {
    const prefix = path.join(tmp, 'w1', 'train_text_document');
    const out = path.join(tmp, 'run');
    const tiny = [
      '--preset',
      'tiny-mha',
      '--set',
      'model.hiddenSize=16',
      '--set',
      'model.numLayers=1',
      '--set',
      'model.ffnSize=32',
      '--set',
      'train.seqLength=16',
      '--set',
      'train.microBatchSize=2',
    ];
    const r = await yuan('train', ...tiny, '--data', prefix, '--steps', '2', '--out', out);
    expect(r.code, r.err).toBe(0);
    const metrics = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.filter((m) => Number.isFinite(m.loss)).length).toBe(2);
  });
});
