import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { YuanError } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer, plugins as tokenizerPlugins, SentencePieceTokenizer } from './index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const model = join(resolve(repoRoot, '..', 'shared'), 'fixtures', 'yuan2-tokenizer', 'tokenizer.model');

describe("the tokenizer plugins (the package's `plugins` export)", () => {
  const byName = (name: string) => {
    const p = tokenizerPlugins.find((x) => x.name === name);
    if (!p) throw new Error(`no plugin ${name}`);
    return p;
  };

  it('has the bytes and sentencepiece tokenizers', () => {
    expect(tokenizerPlugins.map((p) => [p.kind, p.name])).toEqual([
      ['tokenizer', 'bytes'],
      ['tokenizer', 'sentencepiece'],
    ]);
    for (const p of tokenizerPlugins) expect(p.description.length).toBeGreaterThan(10);
  });

  it('loads the byte tokenizer', async () => {
    expect(await byName('bytes').load({})).toBeInstanceOf(ByteTokenizer);
  });

  it('asks for the path of the SentencePiece model', async () => {
    const err = await byName('sentencepiece')
      .load({})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(YuanError);
    expect((err as Error).message).toMatch(/needs a path: set tokenizer\.path/);
    expect(() => byName('sentencepiece').validate?.({ path: 3 })).toThrow(/options\.path must be a non-empty string/);
    expect(byName('sentencepiece').validate?.({ path: 'x.model' })).toEqual({ path: 'x.model' });
  });

  it.skipIf(!existsSync(model))('loads tokenizer.model (needs ../shared, CI has it)', async () => {
    const tok = await byName('sentencepiece').load({ path: model });
    expect(tok).toBeInstanceOf(SentencePieceTokenizer);
    expect(tok.vocabSize).toBe(134958);
  });
});
