import { describe, expect, it } from 'vitest';
import type { FilterDocument } from '@yuan/core';
import { candidateProbability, chooseBands, searchBands } from './dedup/bands.js';
import { MinHasher, estimateJaccard } from './dedup/minhash.js';
import { detectLanguage } from './lang/detect.js';
import { badwordsFilter } from './filters/badwords.js';
import { codeFilter } from './filters/code.js';
import { normalizeFilter } from './filters/normalize.js';
import { KeySet } from './hash/keyset.js';
import { resolveFilterConfig } from './config.js';
import { buildFilterRegistry } from './plugins.js';
import { splitWords } from './text/analysis.js';

const doc = (text: string, lang?: string): FilterDocument => ({ id: 'd', text, lang, record: {} });

describe('LSH bands', () => {
  it('derives 11 x 11 from threshold 0.75 and 128 permutations, meeting the recall and precision targets', () => {
    const { bands, rows } = chooseBands(0.75, 128);
    expect([bands, rows]).toEqual([11, 11]);
    expect(searchBands(0.75, 128)).toEqual({ bands, rows });
    expect(candidateProbability(0.9, bands, rows)).toBeGreaterThan(0.98);
    expect(candidateProbability(0.5, bands, rows)).toBeLessThan(0.01);
  });

  it('estimates Jaccard similarity from signatures', () => {
    const h = new MinHasher({ ngram: 1, numPerm: 256, bands: 16, rows: 16, seed: 1 });
    const a = Array.from({ length: 200 }, (_, i) => `w${i}`);
    const b = [...a.slice(0, 150), ...Array.from({ length: 50 }, (_, i) => `v${i}`)];
    const est = estimateJaccard(h.signature(a.join(' ')), h.signature(b.join(' ')));
    expect(Math.abs(est - 150 / 250)).toBeLessThan(0.08);
  });

  it('gives the same signatures with the SIMD kernel as with the scalar loop (any permutation count, long texts)', () => {
    const words = Array.from({ length: 30000 }, (_, i) => `w${(i * 7919) % 5003}`);
    const texts = [
      words.join(' '),
      words.slice(0, 3).join(' '),
      '',
      'Σίσυφος ΣΑΣ 中文文本 mixed',
      words.slice(0, 400).join(' '),
    ];
    for (const numPerm of [1, 7, 8, 121, 200]) {
      const simd = new MinHasher({ ngram: 5, numPerm, bands: 1, rows: 1, seed: 9 });
      const scalar = new MinHasher({ ngram: 5, numPerm, bands: 1, rows: 1, seed: 9 }, { simd: false });
      expect(scalar.simd).toBe(false);
      for (const t of texts) expect(Array.from(simd.signature(t))).toEqual(Array.from(scalar.signature(t)));
    }
  });
});

describe('KeySet', () => {
  it('adds, finds and grows', () => {
    const s = new KeySet(2, 16);
    for (let i = 0; i < 5000; i++) expect(s.add([i * 7919, i])).toBe(true);
    for (let i = 0; i < 5000; i++) expect(s.add([i * 7919, i])).toBe(false);
    expect(s.has([3, 4])).toBe(false);
    expect(s.size).toBe(5000);
  });
});

describe('language id', () => {
  it('tells Chinese, English, French, code and symbol soup apart', () => {
    expect(
      detectLanguage(
        '历史地理学的起源至少可以追溯到我国最早的地理学著作《禹贡》。这篇托名大禹的著作实际产生在战国后期。',
      ).lang,
    ).toBe('zh');
    const en = detectLanguage(
      'The committee met on Tuesday and agreed that the library should stay open in the evening for all of the students.',
    );
    expect(en.lang).toBe('en');
    expect(en.score).toBeGreaterThan(0.8);
    expect(
      detectLanguage(
        'Le comité a décidé que la bibliothèque restera ouverte le soir pour les étudiants et les professeurs de la ville.',
      ).lang,
    ).toBe('fr');
    expect(detectLanguage('def add(a, b):\n    """Add."""\n    return a + b\n\nx = add(1, 2)\nprint(x)\n').lang).toBe(
      'code',
    );
    expect(detectLanguage('#$%^ &*() {}[] ;:<> ?/~ @!=').lang).toBe('other');
  });

  it('splits CJK text into one word per character and drops punctuation-only tokens', () => {
    expect(splitWords('我们 love 中文 , ok。').words).toEqual(['我', '们', 'love', '中', '文', 'ok']);
  });
});

describe('filters', () => {
  it('normalize applies NFKC, removes control characters and collapses spaces but keeps indentation', () => {
    const f = normalizeFilter.create(
      normalizeFilter.validate!(normalizeFilter.defaults as unknown as Record<string, unknown>),
    );
    const d = doc('ＡＢＣ１２３\u0007  x   y \r\n\r\n\r\n\r\n    indented  line\u200b');
    expect(f.apply(d)).toEqual({ keep: true, edits: { changed: 1 } });
    expect(d.text).toBe('ABC123 x y\n\n    indented line');
    expect(f.apply(doc(' \u0000 \n '))).toMatchObject({ keep: false, reason: 'empty' });
  });

  it('code strips a licence header but keeps the shebang, and drops minified lines', () => {
    const f = codeFilter.create(codeFilter.defaults);
    const d = doc(
      '#!/usr/bin/env python\n# Copyright 2020 X\n# Licensed under Apache-2.0\n\nimport os\nprint(os.name)\n',
      'code',
    );
    expect(f.apply(d)).toEqual({ keep: true, edits: { 'license-header': 1 } });
    expect(d.text).toBe('#!/usr/bin/env python\nimport os\nprint(os.name)\n');
    expect(f.apply(doc(`var a=${'1+'.repeat(800)}1;`, 'code'))).toMatchObject({
      keep: false,
      reason: 'max-line-length',
    });
  });

  it('badwords matches whole words in English and substrings in Chinese', () => {
    const f = badwordsFilter.create(
      badwordsFilter.validate!({ words: { en: ['darn'], zh: ['坏词'] }, files: {}, maxMatches: 0 }),
    );
    expect(f.apply(doc('well darn it', 'en'))).toMatchObject({ keep: false, reason: 'badwords:en', detail: 'darn' });
    expect(f.apply(doc('a darning needle', 'en'))).toEqual({ keep: true });
    expect(f.apply(doc('这是一个坏词的例子', 'zh'))).toMatchObject({ keep: false, reason: 'badwords:zh' });
  });
});

describe('config', () => {
  it('merges options over the preset and names bad fields', async () => {
    const registry = await buildFilterRegistry();
    const c = resolveFilterConfig({ options: { minhash: { threshold: 0.8 } } }, registry);
    expect(c.filters.find((s) => s.name === 'minhash')!.options).toEqual({ threshold: 0.8 });
    expect(() => resolveFilterConfig({ options: { nothere: {} } }, registry)).toThrow(
      /options.nothere names no filter/,
    );
    expect(() => resolveFilterConfig({ textfield: 'x' }, registry)).toThrow(/unknown field textfield/);
    expect(() => resolveFilterConfig({ preset: 'nope' }, registry)).toThrow(
      /unknown filter preset "nope" \(presets: yuan-zh-en\)/,
    );
  });
});
