import { describe, expect, it } from 'vitest';
import { buildFilterRegistry, FilterPipeline } from '../src/index.js';
import {
  gaokaoPassages,
  gsm8k,
  haveDatasets,
  jaccard,
  mutate,
  mutateChars,
  rng,
  shingles,
  skipReason,
  wikiArticles,
  type Doc,
} from './corpus.js';

if (!haveDatasets) console.warn(`skipping dedup tests: ${skipReason}`);

/** Runs documents through normalize + minhash (or exact-dedup) and returns the ids kept. */
async function keptIds(docs: Doc[], dedup = 'minhash'): Promise<Set<string>> {
  const pipeline = new FilterPipeline(await buildFilterRegistry(), [{ name: 'normalize' }, { name: dedup }]);
  const kept = new Set<string>();
  for (const d of docs) if (pipeline.apply({ id: d.id, text: d.text, record: {} }, d.id).keep) kept.add(d.id);
  return kept;
}

function bases(): Doc[] {
  const paragraphs = wikiArticles(60).flatMap((a) =>
    a.text
      .split('\n')
      .filter((l) => l.split(' ').length >= 120)
      .map((text, i) => ({ id: `${a.id}-p${i}`, src: 'wiki', text })),
  );
  const gsm = gsm8k(400)
    .filter((d) => d.text.split(/\s+/).length >= 120)
    .map((d) => ({ ...d }));
  const zh = gaokaoPassages(['chinese']).filter((d) => d.text.length >= 300);
  return [...paragraphs.slice(0, 150), ...gsm.slice(0, 50), ...zh];
}

/** Variants of each base with a true 5-shingle Jaccard in [lo, hi], trying growing numbers of edits. */
function variants(docs: Doc[], lo: number, hi: number, seed: number): { doc: Doc; j: number }[] {
  const rand = rng(seed);
  const out: { doc: Doc; j: number }[] = [];
  for (const d of docs) {
    const s = shingles(d.text);
    const zh = d.src.startsWith('gk');
    for (let k = 1; k < 400; k += k < 8 ? 1 : Math.ceil(k / 4)) {
      const text = zh ? mutateChars(d.text, k, rand) : mutate(d.text, k, rand);
      const j = jaccard(s, shingles(text));
      if (j < lo) break;
      if (j <= hi) {
        out.push({ doc: { id: `${d.id}-v`, src: d.src, text }, j });
        break;
      }
    }
  }
  return out;
}

describe.skipIf(!haveDatasets)('deduplication on real text', () => {
  it('keeps distinct real documents', async () => {
    const docs = bases();
    expect(docs.length).toBeGreaterThan(200);
    const kept = await keptIds(docs);
    // Distinct sources may still overlap (repeated passages); only pairs below 0.5 must survive.
    const shs = docs.map((d) => shingles(d.text));
    const lost = docs.filter((d, i) => !kept.has(d.id) && shs.slice(0, i).every((s) => jaccard(s, shs[i]) <= 0.5));
    expect(lost.length / docs.length).toBeLessThanOrEqual(0.01);
  });

  it('removes near-duplicates with Jaccard >= 0.9 at >= 95% recall', async () => {
    const base = bases();
    const near = variants(base, 0.9, 1, 11);
    expect(near.length).toBeGreaterThan(150);
    const kept = await keptIds([...base, ...near.map((v) => v.doc)]);
    const removed = near.filter((v) => !kept.has(v.doc.id));
    expect(removed.length / near.length).toBeGreaterThanOrEqual(0.95);
  });

  it('keeps documents with Jaccard <= 0.5 to an earlier one at >= 99%', async () => {
    const base = bases();
    const far = variants(base, 0.3, 0.5, 12);
    expect(far.length).toBeGreaterThan(150);
    const kept = await keptIds([...base, ...far.map((v) => v.doc)]);
    const keptFar = far.filter((v) => kept.has(v.doc.id));
    expect(keptFar.length / far.length).toBeGreaterThanOrEqual(0.99);
  });

  it('removes all exact duplicates and nothing else', async () => {
    const base = bases();
    const copies = base.map((d) => ({ ...d, id: `${d.id}-copy`, text: `${d.text}\n` }));
    const kept = await keptIds([...base, ...copies], 'exact-dedup');
    expect(copies.filter((d) => kept.has(d.id))).toEqual([]);
    expect(kept.size).toBe(new Set(base.map((d) => d.text.trim())).size);
  });
});
