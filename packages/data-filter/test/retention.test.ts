import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runFilter } from '../src/index.js';
import {
  boilerplate,
  gaokaoPassages,
  haveDatasets,
  jaccard,
  jsonl,
  junk,
  mutate,
  mutateChars,
  otherLanguages,
  rng,
  shingles,
  skipReason,
  wikiParagraphs,
  type Doc,
} from './corpus.js';

if (!haveDatasets) console.warn(`skipping retention tests: ${skipReason}`);

/**
 * Labelled corpora from ../shared/datasets: good English (WikiText-2 paragraphs of ≥ 120 words, detokenised) and
 * Chinese (gaokao passages), bad (generated junk, boilerplate pages, other languages) and planted near-duplicates.
 * The table printed here is the one in the README.
 */
describe.skipIf(!haveDatasets)('yuan-zh-en preset on labelled corpora', () => {
  const dir = process.env.KEEP_DIR ?? mkdtempSync(path.join(tmpdir(), 'yuan-filter-retention-'));
  if (process.env.KEEP_DIR) mkdirSync(dir, { recursive: true });
  afterAll(() => process.env.KEEP_DIR || rmSync(dir, { recursive: true, force: true }));

  it('keeps >= 95% of good English and Chinese, drops >= 90% of junk, removes >= 95% of near-duplicates (J >= 0.9)', async () => {
    const rand = rng(7);
    const wiki = wikiParagraphs(120);
    // The gaokao files repeat some passages with small edits: those are true near-duplicates, not good documents.
    const distinct = (docs: Doc[]) => {
      const sets: Set<string>[] = [];
      return docs.filter((d) => {
        const s = shingles(d.text);
        const dup = sets.some((t) => jaccard(s, t) >= 0.5);
        sets.push(s);
        return !dup;
      });
    };
    const zh = distinct(gaokaoPassages(['chinese']));
    const gkEn = distinct(gaokaoPassages(['english']));
    const good = [...wiki, ...zh, ...gkEn];
    const bad: Doc[] = [
      ...junk(
        wiki.slice(0, 200).map((d) => d.text),
        rand,
      ),
      ...boilerplate(40, rand),
      ...otherLanguages(wiki.slice(200, 300)),
    ];
    // Near-duplicates of kept good documents, each with Jaccard >= 0.9 to its original (checked independently).
    const near: Doc[] = [];
    for (const d of [...wiki.slice(300, 460), ...zh.slice(0, 40)]) {
      const text = d.src === 'wiki-paragraph' ? mutate(d.text, 1, rand) : mutateChars(d.text, 1, rand);
      if (jaccard(shingles(d.text), shingles(text)) >= 0.9)
        near.push({ id: `${d.id}-near`, src: `near-${d.src}`, text });
    }
    const input = path.join(dir, 'labelled.jsonl');
    writeFileSync(input, jsonl([...good, ...bad, ...near]));
    const out = path.join(dir, 'out.jsonl');
    const report = await runFilter({ inputs: [input], output: out, rejects: path.join(dir, 'rej.jsonl'), workers: 2 });
    const kept = new Set(
      readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).id as string),
    );
    const share = (docs: Doc[]) => docs.filter((d) => kept.has(d.id)).length / docs.length;
    const rows: [string, number, number][] = [
      ['good: WikiText-2 paragraphs (en, >= 120 words)', wiki.length, share(wiki)],
      ['good: gaokao Chinese passages (zh)', zh.length, share(zh)],
      ['good: gaokao English passages (en)', gkEn.length, share(gkEn)],
      [
        'bad: generated junk (6 kinds)',
        bad.filter((d) => d.src.startsWith('junk')).length,
        share(bad.filter((d) => d.src.startsWith('junk'))),
      ],
      ['bad: boilerplate pages (en, zh)', 40, share(bad.filter((d) => d.src === 'boilerplate'))],
      ['bad: other languages (ru, el, fr, de, es)', 100, share(bad.filter((d) => d.src.startsWith('other')))],
      ['bad: planted near-duplicates (J >= 0.9)', near.length, share(near)],
    ];
    console.info(
      [
        '| corpus | documents | kept |',
        '| --- | ---: | ---: |',
        ...rows.map(([n, c, s]) => `| ${n} | ${c} | ${(100 * s).toFixed(1)} % |`),
      ].join('\n'),
    );
    console.info(
      `dropped by: ${report.filters
        .filter((f) => f.dropped)
        .map((f) => `${f.label} ${f.dropped}`)
        .join(', ')}`,
    );
    expect(wiki.length).toBeGreaterThan(1000);
    expect(near.length).toBeGreaterThan(150);
    expect(share(wiki)).toBeGreaterThanOrEqual(0.95);
    expect(share(zh)).toBeGreaterThanOrEqual(0.95);
    expect(share([...zh, ...gkEn])).toBeGreaterThanOrEqual(0.95);
    expect(1 - share(bad)).toBeGreaterThanOrEqual(0.9);
    for (const group of ['junk', 'boilerplate', 'other'])
      expect(1 - share(bad.filter((d) => d.src.startsWith(group))), group).toBeGreaterThanOrEqual(0.9);
    expect(1 - share(near)).toBeGreaterThanOrEqual(0.95);
  });
});
