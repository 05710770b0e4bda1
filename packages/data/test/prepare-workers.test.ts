// prepareData's worker threads open the tokenizer by name from a registry of the plugin modules they are given (a
// plugin object cannot cross threads): the package's own tokenizers by default, a third party's when its module is given.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ByteTokenizer } from '@yuan/tokenizer';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareData } from '../src/index.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-prepare-workers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const input = path.join(tmp, 'docs.txt');
writeFileSync(input, Array.from({ length: 1200 }, (_, i) => `Document ${i}: worker threads tokenize it.`).join('\n\n'));

// bytes under another plugin name, from a module outside this package (no imports: the worker loads it by path)
const plugin = path.join(tmp, 'renamed-bytes.mjs');
writeFileSync(
  plugin,
  `export const plugins = [{ kind: 'tokenizer', name: 'renamed-bytes', description: 'bytes under another name', defaults: {},
  async load() { const { ByteTokenizer } = await import(${JSON.stringify(import.meta.resolve?.('@yuan/tokenizer') ?? '')}); return new ByteTokenizer(); } }];\n`,
);

const prepare = (output: string, workers: number, name: string, plugins?: string[]) =>
  prepareData({
    inputs: [input],
    output: path.join(tmp, output),
    tokenizer: new ByteTokenizer(),
    tokenizerSpec: { name },
    plugins,
    validFraction: 0.1,
    workers,
  });

describe('prepareData on worker threads', () => {
  it('opens a tokenizer by name in each worker: the default modules (@yuan/tokenizer), or the plugin modules given', async () => {
    await prepare('one', 1, 'bytes');
    await prepare('two', 2, 'bytes');
    await prepare('plugin', 2, 'renamed-bytes', [plugin]);
    const bin = (d: string) => readFileSync(path.join(tmp, d, 'train.bin'));
    expect(bin('two').equals(bin('one'))).toBe(true);
    expect(bin('plugin').equals(bin('one'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(tmp, 'plugin', 'index.json'), 'utf8')).tokenizer).toEqual({
      name: 'renamed-bytes',
    });
  });

  it("a name the workers' modules do not provide fails before any worker starts, naming what they provide", async () => {
    await expect(prepare('none', 2, 'renamed-bytes')).rejects.toThrow(
      'tokenizer "renamed-bytes" is not a plugin of the worker threads\' modules (bytes, sentencepiece): give its module in plugins, or use --workers 1',
    );
  });
});
