import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelAdapter } from '@yuan/core';
import { afterAll, describe, expect, it } from 'vitest';
import { formatResultTable, loadSepFile, loadTruthfulEn, loadTruthfulZh, runEvaluation } from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';

const have = hasData('yuan-eval/TruthfulQA_EN.json');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'yuan-protocol-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!have)(have ? 'YUAN-protocol evaluators' : noData('yuan-eval'), () => {
  const settings = { dataDir };

  it('gsm8k --protocol yuan: zh by default, en with lang; ids are line indexes; maj@k votes', async () => {
    const zh = loadSepFile(dataDir, 'gsm8k_Cn.txt').items;
    const say = (x: string | number) => `计算过程……<n>所以答案是\\boxed{${x}}。`;
    const completions = new Map(zh.slice(0, 3).map((r, i) => [r.id, i === 0 ? [say(r.answer)] : [say(-1)]]));
    const { result } = await runEvaluation({
      evaluator: 'gsm8k',
      options: { protocol: 'yuan' },
      settings,
      completions,
    });
    expect(result.metrics.accuracy).toBeCloseTo(1 / 3, 12);
    expect(result.details).toMatchObject({ protocol: 'yuan', lang: 'zh', file: 'gsm8k_Cn.txt' });
    expect(formatResultTable(result)).toMatch(
      /the YUAN 2\.0 paper[\s\S]*76\.6[\s\S]*ours \(this run\): accuracy 33\.3/,
    );
    const [a, b] = zh;
    const votes = new Map([
      [a!.id, [say(1), say(a!.answer), say(a!.answer)]],
      [b!.id, [say(b!.answer), say(7), say(7)]],
    ]);
    const sc = await runEvaluation({
      evaluator: 'gsm8k',
      options: { protocol: 'yuan', lang: 'en' },
      settings: { ...settings, n: 3, k: [1, 3] },
      completions: votes,
    });
    expect(sc.result.metrics).toMatchObject({ accuracy: 0.5, 'maj@3': 0.5 });
    expect(sc.result.details).toMatchObject({ file: 'gsm8k_En.txt' });
    await expect(runEvaluation({ evaluator: 'gsm8k', options: { lang: 'zh' }, settings, completions })).rejects.toThrow(
      /lang "zh" under the default protocol/,
    );
  });

  it('mathqa and mathcloze --protocol yuan score supplied answers; maj@k over letters', async () => {
    const qa = loadSepFile(dataDir, 'mathqa.txt').items;
    const gold = (r: (typeof qa)[number]) => /答案：(.*)。/.exec(r.answer)![1]!.replace(/ /g, '');
    const completions = new Map(
      qa
        .slice(0, 4)
        .map((r, i) => [r.id, [`解析……<n>故选${i < 3 ? gold(r) : 'Z'}`, `故选${gold(r)}`, `故选${gold(r)}`]]),
    );
    const { result } = await runEvaluation({
      evaluator: 'mathqa',
      options: { protocol: 'yuan' },
      settings: { ...settings, n: 3, k: [1, 3] },
      completions,
    });
    expect(result.metrics).toMatchObject({ accuracy: 0.75, 'maj@3': 1 });
    const cloze = loadSepFile(dataDir, 'mathcloze.txt').items;
    const answers = new Map(cloze.slice(0, 2).map((r) => [r.id, [`故答案为：${r.answer}`]]));
    expect(
      (await runEvaluation({ evaluator: 'mathcloze', options: { protocol: 'yuan' }, settings, completions: answers }))
        .result.metrics.accuracy,
    ).toBe(1);
  });

  it('truthfulqa zh: the shuffled gold letter scores, A alone does not', async () => {
    const qs = loadTruthfulZh(dataDir, 1234).items.slice(0, 20);
    const right = new Map(qs.map((q) => [q.id, [`正确答案是${q.gold}选项。`]]));
    const r1 = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { protocol: 'yuan' },
      settings,
      completions: right,
    });
    expect(r1.result.metrics.mc1).toBe(1);
    expect(String(r1.result.details?.shuffle)).toMatch(/seed 1234/);
    const alwaysA = new Map(qs.map((q) => [q.id, ['正确答案是A选项。']]));
    const r2 = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { protocol: 'yuan' },
      settings,
      completions: alwaysA,
    });
    expect(r2.result.metrics.mc1).toBe(qs.filter((q) => q.gold === 'A').length / 20);
    expect(r2.result.metrics.mc1).toBeLessThan(1);
    const unshuffled = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { protocol: 'yuan', shuffleSeed: -1 },
      settings,
      completions: alwaysA,
    });
    expect(unshuffled.result.metrics.mc1).toBe(1);
  });

  it('truthfulqa en: MC1/MC2 by option log-likelihood; without log-likelihoods it says so in one line', async () => {
    const qs = loadTruthfulEn(dataDir).items.slice(0, 5);
    const truths = new Set(qs.flatMap((q) => q.mc2.filter((t) => t.label === 1).map((t) => ` ${t.text}`)));
    // prefers every true answer equally, every false one much less
    const model: ModelAdapter = {
      name: 'll',
      generate: async () => [''],
      logLikelihood: async (_c, x) => (truths.has(x) ? -1 : -20),
    };
    const { result } = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { lang: 'en' },
      settings: { ...settings, limit: 5 },
      model,
    });
    expect(result.metrics.mc1).toBe(1);
    expect(result.metrics.mc2).toBeGreaterThan(0.99);
    const liar: ModelAdapter = {
      name: 'liar',
      generate: async () => [''],
      logLikelihood: async (_c, x) => (truths.has(x) ? -20 : -1),
    };
    const lies = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { lang: 'en' },
      settings: { ...settings, limit: 5 },
      model: liar,
    });
    expect(lies.result.metrics.mc1).toBe(0);
    expect(lies.result.metrics.mc2).toBeLessThan(0.01);
    const noLl: ModelAdapter = { name: 'plain-endpoint', generate: async () => [''] };
    await expect(runEvaluation({ evaluator: 'truthfulqa', settings, model: noLl })).rejects.toThrow(
      /^truthfulqa --lang en needs option log-likelihoods[^\n]*$/,
    );
    const refusing: ModelAdapter = {
      ...noLl,
      logLikelihood: async () => Promise.reject(new Error('HTTP 400: echo is not supported')),
    };
    await expect(
      runEvaluation({ evaluator: 'truthfulqa', settings: { ...settings, limit: 2 }, model: refusing }),
    ).rejects.toThrow(/gave none: HTTP 400/);
  });

  it('counts and reports malformed data lines without failing', async () => {
    const dir = path.join(tmp, 'data');
    cpSync(path.join(dataDir, 'yuan-eval'), path.join(dir, 'yuan-eval'), { recursive: true });
    const file = path.join(dir, 'yuan-eval', 'mathqa.txt');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[1] = 'a question without a separator';
    lines[2] = `${lines[2]!.split('[SEP]')[0]}[SEP]答案：不知道。`;
    writeFileSync(file, lines.join('\n'));
    const tq = path.join(dir, 'yuan-eval', 'TruthfulQA_CN.json');
    const tlines = readFileSync(tq, 'utf8').split('\n');
    tlines[0] = "{'query': 'broken";
    writeFileSync(tq, tlines.join('\n'));
    const out = path.join(tmp, 'out');
    const completions = new Map([['0', ['故选D']]]);
    const { result, samplesFile } = await runEvaluation({
      evaluator: 'mathqa',
      options: { protocol: 'yuan' },
      settings: { dataDir: dir, limit: 3 },
      completions,
      outputDir: out,
    });
    expect(result.details).toMatchObject({ skipped_lines: 2 });
    expect(String(result.details?.skipped)).toMatch(/record 1: expected one \[SEP\].*record 2: no answer letter/);
    expect(readFileSync(samplesFile!, 'utf8')).toMatch(/"question_id":"1","skipped"/);
    const t = await runEvaluation({
      evaluator: 'truthfulqa',
      options: { protocol: 'yuan' },
      settings: { dataDir: dir, limit: 2 },
      completions: new Map([['1', ['x']]]),
    });
    expect(t.result.details).toMatchObject({ skipped_lines: 1 });
  });
});
