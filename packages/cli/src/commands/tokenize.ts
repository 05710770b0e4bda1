import { readFileSync } from 'node:fs';
import { YuanError } from '@yuan/core';
import { idListOption, requireString, type Command } from '../command.js';
import { loadRegistry, openTokenizer, PLUGIN_OPTION } from '../context.js';

/** `yuan tokenize`: text to ids and pieces, or ids back to text. */
export const tokenizeCommand: Command = {
  path: ['tokenize'],
  summary: 'encode text to ids and pieces (or --decode ids) with a SentencePiece .model or the byte tokenizer',
  usage: 'yuan tokenize --tokenizer FILE.model|bytes (--text STR | --file F | --decode 1,2,3) [--json]',
  options: {
    tokenizer: { type: 'string' },
    text: { type: 'string' },
    file: { type: 'string' },
    decode: { type: 'string' },
    json: { type: 'boolean' },
    ...PLUGIN_OPTION,
  },
  async run(values, _pos, io) {
    const tokenizer = await openTokenizer(
      await loadRegistry(values),
      requireString(values, 'tokenizer', tokenizeCommand),
    );
    const given = ['text', 'file', 'decode'].filter((k) => values[k] !== undefined);
    if (given.length !== 1)
      throw new YuanError('usage', `give exactly one of --text, --file or --decode\nusage: ${tokenizeCommand.usage}`);
    if (values.decode !== undefined) {
      const raw = values.decode as string;
      const ids = raw.trim() === '' ? [] : idListOption(raw, 'decode');
      const bad = ids.find((id) => id >= tokenizer.vocabSize);
      if (bad !== undefined)
        throw new YuanError('input', `token id ${bad} is outside the vocabulary (0..${tokenizer.vocabSize - 1})`);
      const text = tokenizer.decode(ids);
      io.out(values.json ? JSON.stringify({ text }) : text);
      return;
    }
    const text = values.text !== undefined ? (values.text as string) : readFileSync(values.file as string, 'utf8');
    const ids = tokenizer.encode(text);
    const pieces = tokenizer.pieces(ids);
    if (values.json) io.out(JSON.stringify({ ids, pieces }));
    else io.out(`${ids.join(' ')}\n${pieces.join(' ')}\n${ids.length} tokens`);
  },
};
