import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { YuanError } from '@yuan/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSentencePiece } from './sentencepiece.js';
import { ModelType } from './sp-model.js';
import { encodeSpModel } from './sp-writer.js';
import { makeModel } from './testing.js';

describe('loadSentencePiece errors', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'yuan-sp-errors-'));
  });

  async function expectError(path: string, pattern: RegExp): Promise<void> {
    const err = await loadSentencePiece(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(YuanError);
    expect((err as YuanError).code).toBe('tokenizer');
    expect((err as YuanError).message).toMatch(pattern);
  }

  it('names a missing file', async () => {
    await expectError(join(dir, 'nope.model'), /SentencePiece model not found: .*nope\.model/);
  });

  it('names a directory without tokenizer.model, and loads one that has it', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await expectError(empty, /is a directory without tokenizer\.model/);
    const full = join(dir, 'full');
    await mkdir(full);
    await writeFile(join(full, 'tokenizer.model'), encodeSpModel(makeModel([['a', 0]])));
    expect((await loadSentencePiece(full)).model.pieces.length).toBe(260);
  });

  it('says a text file, an empty file or a JSON file is not a SentencePiece model', async () => {
    for (const [name, content] of [
      ['text.model', 'Hello world, this is not a model\n'],
      ['empty.model', ''],
      ['tokenizer.json', '{"model": {"type": "BPE"}}'],
    ]) {
      const file = join(dir, name);
      await writeFile(file, content);
      await expectError(file, /is not a SentencePiece model/);
    }
  });

  it('rejects Unigram models and character-map normalizers with a clear message', async () => {
    const uni = makeModel([['a', 0]]);
    uni.trainer.modelType = ModelType.UNIGRAM;
    await writeFile(join(dir, 'uni.model'), encodeSpModel(uni));
    await expectError(join(dir, 'uni.model'), /model type UNIGRAM is not supported; only BPE/);
    const nfkc = makeModel([['a', 0]]);
    nfkc.normalizer.name = 'nmt_nfkc';
    nfkc.normalizer.precompiledCharsmap = new Uint8Array([1, 2, 3, 4]);
    await writeFile(join(dir, 'nfkc.model'), encodeSpModel(nfkc));
    await expectError(join(dir, 'nfkc.model'), /normalizer 'nmt_nfkc' with a character map is not supported/);
  });
});
