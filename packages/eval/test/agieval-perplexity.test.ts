import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAgiEval, runEvaluation } from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';
import { toyAdapter } from './toy-model.js';

const have = hasData('agieval/gaokao-mathqa.jsonl');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'yuan-ppl-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!have)(have ? 'agieval' : noData('agieval'), () => {
  const subsets = 'gaokao-mathqa,sat-math,gaokao-physics';
  it('picks the option with the highest log-likelihood (a test double that prefers the gold option)', async () => {
    const questions = ['gaokao-mathqa', 'sat-math'].flatMap((s) => loadAgiEval(dataDir, s));
    const goldByPrompt = new Map(questions.map((q) => [q.prompt, ` ${q.options!['ABCDE'.indexOf(q.labels[0]!)]}`]));
    const model = toyAdapter((context) => goldByPrompt.get(context)!);
    const { result } = await runEvaluation({
      evaluator: 'agieval',
      options: { subsets: 'gaokao-mathqa,sat-math' },
      settings: { dataDir, limit: 30 },
      model,
    });
    expect(result.metrics['gaokao-mathqa/accuracy']).toBe(1);
    expect(result.metrics['sat-math/accuracy']).toBe(1);
    expect(result.count).toBe(60);
  });

  it('extracts letters from supplied answers, multi-answer questions included', async () => {
    const qs = subsets.split(',').flatMap((s) => loadAgiEval(dataDir, s).slice(0, 20));
    const right = new Map(
      qs.map((q) => [
        q.id,
        [q.subset.startsWith('gaokao') ? `解析略，故选${q.labels.join('')}` : `The answer is (${q.labels[0]})`],
      ]),
    );
    const wrong = new Map(qs.map((q) => [q.id, [`答案是${'ABCD'.split('').find((l) => !q.labels.includes(l))}`]]));
    const opts = { evaluator: 'agieval', options: { subsets }, settings: { dataDir, limit: 20 } } as const;
    expect((await runEvaluation({ ...opts, completions: right })).result.metrics.accuracy).toBe(1);
    expect((await runEvaluation({ ...opts, completions: wrong })).result.metrics.accuracy).toBe(0);
  });

  it('scores cloze answers', async () => {
    const qs = loadAgiEval(dataDir, 'gaokao-mathcloze');
    const completions = new Map(qs.map((q) => [q.id, [`所以答案是 ${q.answer}`]]));
    const { result } = await runEvaluation({
      evaluator: 'agieval',
      options: { subsets: 'gaokao-mathcloze' },
      settings: { dataDir },
      completions,
    });
    expect(result.metrics.accuracy).toBe(1);
  });

  it('names an unknown subset', async () => {
    await expect(
      runEvaluation({
        evaluator: 'agieval',
        options: { subsets: 'gaokao-latin' },
        settings: { dataDir },
        completions: new Map(),
      }),
    ).rejects.toThrow(/unknown subset "gaokao-latin"/);
  });
});

describe('perplexity', () => {
  it('aggregates token losses over chunks: uniform over 256 byte values gives perplexity 256 and 8 bits per byte', async () => {
    const file = path.join(tmp, 'text.txt');
    writeFileSync(file, 'hello world\n'.repeat(500));
    const { result } = await runEvaluation({
      evaluator: 'perplexity',
      options: { file, chunkChars: 1200 },
      model: toyAdapter(() => ''),
      settings: { dataDir },
    });
    expect(result.count).toBe(5);
    expect(result.metrics.perplexity).toBeCloseTo(256, 9);
    expect(result.metrics.loss).toBeCloseTo(Math.log(256), 12);
    // one byte per chunk is not predicted (the first), so bits per byte is just under 8
    expect(result.metrics.bits_per_byte).toBeCloseTo((8 * (6000 - 5)) / 6000, 9);
  });
  it('refuses a model without token losses and a missing file', async () => {
    const bare = { name: 'bare', generate: async () => [''] };
    await expect(
      runEvaluation({ evaluator: 'perplexity', options: { file: 'x' }, model: bare, settings: { dataDir } }),
    ).rejects.toThrow(/exposes no token losses/);
    await expect(
      runEvaluation({
        evaluator: 'perplexity',
        options: { file: path.join(tmp, 'none.txt') },
        model: toyAdapter(() => ''),
        settings: { dataDir },
      }),
    ).rejects.toThrow(/file not found/);
  });
});
