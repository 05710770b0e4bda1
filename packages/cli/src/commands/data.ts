import { createReadStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { YuanError, type Tokenizer } from '@yuan/core';
import { PackWriter } from '@yuan/model';
import { numberOption, type Command } from '../command.js';
import { loadRegistry, openTokenizer, PLUGIN_OPTION } from '../context.js';

type Sink = { doc(text: string): Promise<void>; pair(prompt: string, answer: string): Promise<void> };

/** Plain text (any file that is not .jsonl: .txt, .md, sources): documents are blocks of lines separated by blank lines. */
async function readText(file: string, sink: Sink): Promise<void> {
  let block: string[] = [];
  const flush = async () => {
    if (block.some((l) => l.trim() !== '')) await sink.doc(block.join('\n'));
    block = [];
  };
  for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
    if (line.trim() === '') await flush();
    else block.push(line);
  }
  await flush();
}

/** JSON lines: `{"<field>": "..."}` is a document, `{"prompt": "...", "answer": "..."}` an SFT pair. */
async function readJsonl(file: string, field: string, sink: Sink): Promise<void> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new YuanError('input', `${file}:${n}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof rec?.[field] === 'string') await sink.doc(rec[field] as string);
    else if (typeof rec?.prompt === 'string' && typeof rec?.answer === 'string') await sink.pair(rec.prompt, rec.answer);
    else throw new YuanError('input', `${file}:${n}: expected a string field "${field}" or string fields "prompt" and "answer"`);
  }
}

async function checkReadable(files: string[]): Promise<void> {
  if (files.length === 0) throw new YuanError('usage', `missing --input FILE\nusage: ${dataPrepare.usage}`);
  for (const f of files) {
    try {
      await access(f, constants.R_OK);
    } catch (e) {
      throw new YuanError('input', `cannot read input ${f} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
}

/** `yuan data prepare`: tokenizes text or JSONL files into a packed data folder with a train/valid split. */
export const dataPrepare: Command = {
  path: ['data', 'prepare'],
  summary: 'tokenize text files (.txt, .md, sources) and .jsonl (text or prompt/answer) into a packed token folder with a train/valid split',
  usage: 'yuan data prepare --input FILE [--input FILE ...] --tokenizer FILE.model|bytes --output DIR [--valid-fraction 0.05] [--text-field text]',
  options: {
    input: { type: 'string', multiple: true },
    tokenizer: { type: 'string' },
    output: { type: 'string' },
    'valid-fraction': { type: 'string' },
    'text-field': { type: 'string' },
    ...PLUGIN_OPTION,
  },
  async run(values, positionals, io) {
    const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
    const output = values.output as string | undefined;
    if (!output) throw new YuanError('usage', `missing --output DIR\nusage: ${dataPrepare.usage}`);
    if (!values.tokenizer) throw new YuanError('usage', `missing --tokenizer (FILE.model or bytes)\nusage: ${dataPrepare.usage}`);
    const validFraction = numberOption(values, 'valid-fraction', 0.05, { min: 0 });
    if (validFraction >= 1) throw new YuanError('usage', `--valid-fraction ${validFraction} must be below 1`);
    await checkReadable(inputs);
    const registry = await loadRegistry(values);
    const spec = values.tokenizer as string;
    const tokenizer: Tokenizer = await openTokenizer(registry, spec);
    const tokName = registry.has('tokenizer', spec) ? { name: spec } : { name: tokenizer.name, path: path.resolve(spec.replace(/^[A-Za-z][\w-]*:/, '')) };
    const writer = await PackWriter.create(output, { tokenizer: tokName, vocabSize: tokenizer.vocabSize, special: tokenizer.special, validFraction });
    let docs = 0;
    const tick = () => {
      if (++docs % 10000 === 0) io.err(`${docs} documents...`);
    };
    const sink: Sink = {
      doc: async (text) => {
        await writer.addDocument(tokenizer.encode(text));
        tick();
      },
      pair: async (prompt, answer) => {
        await writer.addPair(tokenizer.encode(prompt), tokenizer.encode(answer));
        tick();
      },
    };
    try {
      for (const f of inputs) {
        if (/\.jsonl$/i.test(f)) await readJsonl(f, (values['text-field'] as string | undefined) ?? 'text', sink);
        else await readText(f, sink);
      }
    } catch (e) {
      await writer.abort();
      throw e;
    }
    const index = await writer.finish();
    const { train, valid } = index.splits;
    io.out(
      `packed ${train.documents + valid.documents} documents (${index.sftPairs} prompt/answer pairs), ${train.tokens + valid.tokens} tokens into ${output}: ` +
        `train ${train.documents} documents / ${train.tokens} tokens, valid ${valid.documents} documents / ${valid.tokens} tokens`,
    );
  },
};
