import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shared, yuan } from './run.js';

const dir = path.join(shared, 'fixtures/yuan2-tokenizer');

describe.skipIf(!existsSync(dir))(
  'yuan tokenize with the real YUAN 2.0 tokenizer (needs ../shared, which CI has)',
  () => {
    const model = path.join(dir, 'tokenizer.model');
    it('gives the golden ids and decodes back', async () => {
      const golden = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8'));
      const cases = Array.isArray(golden) ? golden : golden.cases;
      for (const c of cases) {
        const r = await yuan('tokenize', '--tokenizer', model, '--text', c.text, '--json');
        expect(r.code).toBe(0);
        expect(JSON.parse(r.out).ids).toEqual(c.ids);
        const d = await yuan('tokenize', '--tokenizer', model, '--decode', c.ids.join(','), '--json');
        expect(JSON.parse(d.out).text).toBe(c.decoded ?? c.text);
      }
    });
  },
);

describe('yuan tokenize with the byte tokenizer', () => {
  it('encodes special tokens as single ids and round-trips', async () => {
    const r = JSON.parse((await yuan('tokenize', '--tokenizer', 'bytes', '--text', 'hi<sep>好<eod>', '--json')).out);
    expect(r.ids).toEqual([104, 105, 257, 229, 165, 189, 256]);
    const d = JSON.parse((await yuan('tokenize', '--tokenizer', 'bytes', '--decode', r.ids.join(','), '--json')).out);
    expect(d.text).toBe('hi<sep>好<eod>');
  });
});
