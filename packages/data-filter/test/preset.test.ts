import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFilter, type FilterReport } from '../src/index.js';
import {
  gaokaoPassages,
  gsm8k,
  haveDatasets,
  humaneval,
  jaccard,
  jsonl,
  junk,
  mutate,
  rng,
  shakespeare,
  shingles,
  skipReason,
  wikiArticles,
  type Doc,
} from './corpus.js';

if (!haveDatasets) console.warn(`skipping preset tests: ${skipReason}`);

describe.skipIf(!haveDatasets)('preset yuan-zh-en on real text, junk and planted duplicates', () => {
  let dir: string;
  let report: FilterReport;
  const kept = new Map<string, Record<string, unknown>>();
  const rejected = new Map<string, { reason: string; detail?: string }>();
  const docs: (Doc & { expect?: RegExp })[] = [];
  const exactCopies: string[] = [];
  const nearPairs: { original: string; copy: string; j: number }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-'));
    const rand = rng(7);
    const wiki = wikiArticles(40);
    const shak = shakespeare(60);
    const gsm = gsm8k(120);
    const zh = gaokaoPassages(['chinese']);
    const zhQ = gaokaoPassages(['english']);
    const code = humaneval(20).map((d, i) =>
      i % 2 ? d : { ...d, text: `# Copyright (c) 2021 Example Corp.\n# Licensed under the MIT License.\n\n${d.text}` },
    );
    const base = [...wiki, ...shak, ...gsm, ...zh, ...zhQ, ...code];
    docs.push(
      ...base,
      ...junk(
        shak.map((d) => d.text),
        rand,
      ),
    );
    // Planted exact duplicates (whitespace differences only) and near-duplicates of English prose.
    for (const d of [...wiki.slice(0, 10), ...shak.slice(0, 10), ...zh.slice(0, 10)]) {
      const id = `${d.id}-exact`;
      exactCopies.push(id);
      docs.push({ id, src: 'copy', text: `  ${d.text.replace(/\n/g, '\n\n')} ` });
    }
    for (const d of wiki.slice(10, 30)) {
      const text = mutate(d.text, 2, rand);
      nearPairs.push({ original: d.id, copy: `${d.id}-near`, j: jaccard(shingles(d.text), shingles(text)) });
      docs.push({ id: `${d.id}-near`, src: 'near', text });
    }
    writeFileSync(path.join(dir, 'in.jsonl'), jsonl(docs.map(({ expect: _e, ...d }) => d)));
    report = await runFilter({
      inputs: [path.join(dir, 'in.jsonl')],
      output: path.join(dir, 'out.jsonl'),
      rejects: path.join(dir, 'rej.jsonl'),
      report: path.join(dir, 'report.json'),
    });
    for (const l of readFileSync(path.join(dir, 'out.jsonl'), 'utf8').trim().split('\n')) {
      const r = JSON.parse(l);
      kept.set(r.id, r);
    }
    for (const l of readFileSync(path.join(dir, 'rej.jsonl'), 'utf8').trim().split('\n')) {
      const r = JSON.parse(l);
      rejected.set(r.id, { reason: r.reason, detail: r.detail });
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const rate = (src: string) => {
    const all = docs.filter((d) => d.src === src);
    return all.filter((d) => kept.has(d.id)).length / all.length;
  };

  it('accounts for every document exactly once', () => {
    expect(kept.size + rejected.size).toBe(docs.length);
    expect(report.input.documents).toBe(docs.length);
    expect(report.result.kept).toBe(kept.size);
  });

  it('keeps most real prose in both languages', () => {
    expect(rate('wiki')).toBeGreaterThanOrEqual(0.9);
    expect(rate('shak')).toBeGreaterThanOrEqual(0.9);
    expect(rate('gk-chinese')).toBeGreaterThanOrEqual(0.85);
    expect(rate('gk-english')).toBeGreaterThanOrEqual(0.8);
  });

  it('does not drop Chinese prose with English-only rules', () => {
    const englishOnly =
      /^(langid:|gopher-quality:(mean-word-length|stop-words|too-few-words|alpha-words)|fineweb:short-lines|c4:)/;
    const zh = docs.filter((d) => d.src === 'gk-chinese');
    const bad = zh
      .filter((d) => englishOnly.test(rejected.get(d.id)?.reason ?? ''))
      .map((d) => `${d.id}: ${rejected.get(d.id)!.reason}`);
    expect(bad).toEqual([]);
    for (const d of zh.filter((x) => kept.has(x.id))) expect(kept.get(d.id)!.text).toMatch(/[。，]/);
  });

  it('removes every planted exact duplicate (by dedup when its original was kept)', () => {
    for (const id of exactCopies) {
      expect(kept.has(id), id).toBe(false);
      const original = id.replace(/-exact$/, '');
      if (kept.has(original))
        expect(rejected.get(id)!.reason).toMatch(/^(exact-dedup:duplicate|minhash:near-duplicate)$/);
      else expect(rejected.get(id)!.reason).toBe(rejected.get(original)!.reason);
    }
    expect(exactCopies.filter((id) => kept.has(id.replace(/-exact$/, ''))).length).toBeGreaterThan(20);
  });

  it('removes near-duplicates (Jaccard >= 0.9) of kept documents', () => {
    const pairs = nearPairs.filter((p) => p.j >= 0.9 && kept.has(p.original));
    expect(pairs.length).toBeGreaterThan(10);
    const removed = pairs.filter((p) => rejected.get(p.copy)?.reason === 'minhash:near-duplicate');
    expect(removed.length / pairs.length).toBeGreaterThanOrEqual(0.95);
  });

  it('drops the junk with the expected reasons', () => {
    const wrong = docs
      .filter((d) => d.expect)
      .filter((d) => !d.expect!.test(rejected.get(d.id)?.reason ?? 'kept'))
      .map((d) => `${d.id}: ${rejected.get(d.id)?.reason ?? 'kept'}`);
    expect(wrong).toEqual([]);
  });

  it('labels HumanEval as code and strips licence headers', () => {
    const code = docs.filter((d) => d.src === 'humaneval');
    expect(code.filter((d) => kept.has(d.id)).length).toBeGreaterThanOrEqual(18);
    for (const d of code.filter((x) => kept.has(x.id))) expect(kept.get(d.id)!.text).not.toMatch(/Copyright|Licensed/);
    expect(report.filters.find((f) => f.label === 'code')!.edits['license-header']).toBe(
      code.filter((d, i) => i % 2 === 0 && kept.has(d.id)).length,
    );
  });

  it('reports per-filter counts, bytes and examples', () => {
    const total = report.filters.reduce((n, f) => n + f.dropped, 0);
    expect(total).toBe(rejected.size);
    for (const f of report.filters) {
      expect(f.seen).toBe(f.kept + f.dropped);
      const sum = Object.values(f.reasons).reduce((n, r) => n + r.count, 0);
      expect(sum).toBe(f.dropped);
      for (const r of Object.values(f.reasons)) expect(r.examples.length).toBeGreaterThan(0);
    }
    const onDisk = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8')) as FilterReport;
    expect(onDisk.result).toEqual(report.result);
    expect(report.filters.find((f) => f.label === 'minhash')!.state).toMatchObject({ bands: 11, rows: 11 });
  });
});
