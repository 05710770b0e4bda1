import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILTER_PRESETS, runFilter, workersForInput } from '../src/index.js';
import {
  gaokaoPassages,
  gsm8k,
  haveDatasets,
  jsonl,
  rng,
  shakespeare,
  skipReason,
  wikiArticles,
  junk,
} from './corpus.js';

if (!haveDatasets) console.warn(`skipping determinism tests: ${skipReason}`);

describe.skipIf(!haveDatasets)('determinism and sharding', () => {
  let dir: string;
  let input: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-det-'));
    input = path.join(dir, 'in.jsonl');
    const shak = shakespeare(40);
    const docs = [
      ...wikiArticles(20),
      ...shak,
      ...gsm8k(60),
      ...gaokaoPassages(['chinese']).slice(0, 40),
      ...junk(
        shak.map((d) => d.text),
        rng(3),
      ),
    ];
    // Duplicates, to show dedup at work in the single run.
    writeFileSync(input, jsonl([...docs, ...docs.slice(0, 15).map((d) => ({ ...d, id: `${d.id}-dup` }))]));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives byte-identical output, rejects and gzip output for the same input and config', async () => {
    for (const ext of ['jsonl', 'jsonl.gz']) {
      const a = path.join(dir, `a.${ext}`);
      const b = path.join(dir, `b.${ext}`);
      await runFilter({ inputs: [input], output: a, rejects: path.join(dir, `ra.${ext}`) });
      await runFilter({ inputs: [input], output: b, rejects: path.join(dir, `rb.${ext}`) });
      expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
      expect(readFileSync(path.join(dir, `ra.${ext}`)).equals(readFileSync(path.join(dir, `rb.${ext}`)))).toBe(true);
      expect(readFileSync(a).length).toBeGreaterThan(1000);
    }
  });

  it('--workers 1 and --workers 3 give byte-identical output, rejects and report counts', async () => {
    // Malformed lines, a blank line and an over-long line among the documents, and small batches of many lines.
    const mixed = path.join(dir, 'mixed.jsonl');
    const body = readFileSync(input, 'utf8').trim().split('\n');
    body.splice(7, 0, 'not json', '', JSON.stringify({ text: 'x'.repeat(5000) }), '[1,2]');
    writeFileSync(mixed, `${body.join('\n')}\n`);
    const run = async (workers: number) => {
      const tag = `w${workers}`;
      const report = await runFilter({
        inputs: [mixed, input],
        output: path.join(dir, `${tag}.jsonl`),
        rejects: path.join(dir, `${tag}-rej.jsonl`),
        workers,
        configObject: { maxLineBytes: 4096, annotate: true },
      });
      expect(report.threads).toBe(workers);
      const strip = (r: typeof report) =>
        JSON.stringify({
          ...r,
          output: '',
          rejects: '',
          threads: 0,
          seconds: 0,
          documentsPerSecond: 0,
          megabytesPerSecond: 0,
          filters: r.filters.map((f) => ({ ...f, seconds: 0 })),
        });
      return {
        out: readFileSync(path.join(dir, `${tag}.jsonl`)),
        rej: readFileSync(path.join(dir, `${tag}-rej.jsonl`)),
        report: strip(report),
        kept: report.result.kept,
      };
    };
    const one = await run(1);
    const three = await run(3);
    expect(one.kept).toBeGreaterThan(50);
    expect(three.out.equals(one.out)).toBe(true);
    expect(three.rej.equals(one.rej)).toBe(true);
    expect(three.report).toEqual(one.report);
    expect(one.report).toMatch(/line-too-long/);
    expect(one.report).toMatch(/near-duplicate|duplicate/);
  });

  it('--shard i/n runs together give the documents of one run (pipeline without dedup)', async () => {
    const filters = FILTER_PRESETS[0].filters.filter((f) => f.name !== 'exact-dedup' && f.name !== 'minhash');
    const lines = (f: string) => readFileSync(f, 'utf8').trim().split('\n').filter(Boolean);
    await runFilter({ inputs: [input], output: path.join(dir, 'one.jsonl'), configObject: { filters } });
    const shards: string[] = [];
    for (let i = 0; i < 3; i++) {
      const out = path.join(dir, `shard-${i}.jsonl`);
      const report = await runFilter({ inputs: [input], output: out, shard: `${i}/3`, configObject: { filters } });
      expect(report.shard).toEqual({ index: i, count: 3 });
      shards.push(...lines(out));
    }
    const one = lines(path.join(dir, 'one.jsonl'));
    expect(one.length).toBeGreaterThan(50);
    expect([...shards].sort()).toEqual([...one].sort());
  });

  it('with dedup, each shard deduplicates only within itself', async () => {
    const one = await runFilter({ inputs: [input], output: path.join(dir, 'd1.jsonl') });
    let kept = 0;
    for (let i = 0; i < 3; i++)
      kept += (await runFilter({ inputs: [input], output: path.join(dir, `d-${i}.jsonl`), shard: `${i}/3` })).result
        .kept;
    // Copies whose original fell in another shard survive there: more documents are kept in all than by one run.
    expect(kept).toBeGreaterThan(one.result.kept);
  });
});

describe('default thread count', () => {
  it('uses one thread per 16 MB of input at most, counting gzip 4x and a shard 1/N', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'yuan-workers-'));
    try {
      const file = (name: string, bytes: number) => {
        const f = path.join(dir, name);
        writeFileSync(f, '');
        truncateSync(f, bytes);
        return f;
      };
      const small = file('small.jsonl', 10e6);
      const big = file('big.jsonl', 40e6);
      const gz = file('c.jsonl.gz', 10e6);
      expect(workersForInput([small], 8)).toBe(1);
      expect(workersForInput([big], 8)).toBe(2);
      expect(workersForInput([big], 1)).toBe(1);
      expect(workersForInput([big, small, gz], 8)).toBe(5);
      expect(workersForInput([big], 8, '0/2')).toBe(1);
      expect(workersForInput([path.join(dir, 'missing.jsonl')], 8)).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
