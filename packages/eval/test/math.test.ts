import { describe, expect, it } from 'vitest';
import { loadGsm8k, loadSvamp, runEvaluation } from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';

const gsm = hasData('gsm8k/test.jsonl');
const svamp = hasData('svamp/SVAMP.json');

describe.skipIf(!gsm)(gsm ? 'gsm8k' : noData('gsm8k/test.jsonl'), () => {
  const problems = gsm ? loadGsm8k(dataDir) : [];
  const settings = { dataDir };

  it('scores accuracy 1.0 when each completion is the reference solution', async () => {
    expect(problems).toHaveLength(1319);
    const completions = new Map(problems.map((p) => [p.id, [p.solution!]]));
    const { result } = await runEvaluation({ evaluator: 'gsm8k', settings, completions });
    expect(result.metrics.accuracy).toBe(1);
    expect(result.count).toBe(1319);
  });

  it('scores the reference reasoning without its #### line by its last number, and a wrong number 0', async () => {
    const some = problems.slice(0, 50);
    const stripped = new Map(some.map((p) => [p.id, [`${p.solution!.split('#### ')[0]}The answer is ${p.gold}.`]]));
    expect((await runEvaluation({ evaluator: 'gsm8k', settings, completions: stripped })).result.metrics.accuracy).toBe(
      1,
    );
    const wrong = new Map(some.map((p) => [p.id, [`The answer is ${Number(p.gold) + 1}.`]]));
    expect((await runEvaluation({ evaluator: 'gsm8k', settings, completions: wrong })).result.metrics.accuracy).toBe(0);
  });

  it('computes maj@k with take-first-k on constructed votes', async () => {
    const [a, b, c] = problems;
    const say = (x: string | number) => `so the answer is ${x}`;
    const completions = new Map([
      // first wrong, then right twice: greedy 0, maj@3 1, maj@5 1
      [a!.id, [say(1), say(a!.gold), say(a!.gold), say(2), say(3)]],
      // right first, then wrong three times: greedy 1, maj@3 0 (wrong 2 of 3), maj@5 0
      [b!.id, [say(b!.gold), say(-7), say(-7), say(-7), say(b!.gold)]],
      // a tie in the first 4 goes to the earlier answer (right), maj@5 breaks it for the wrong one
      [c!.id, [say(c!.gold), say(9999), say(9999), say(c!.gold), say(9999)]],
    ]);
    const { result } = await runEvaluation({
      evaluator: 'gsm8k',
      settings: { ...settings, n: 5, k: [1, 3, 4, 5] },
      completions,
    });
    expect(result.metrics.accuracy).toBeCloseTo(2 / 3, 12);
    expect(result.metrics['maj@3']).toBeCloseTo(1 / 3, 12);
    expect(result.metrics['maj@4']).toBeCloseTo(2 / 3, 12);
    expect(result.metrics['maj@5']).toBeCloseTo(1 / 3, 12);
    expect(result.metrics.mean_accuracy).toBeCloseTo(6 / 15, 12);
    await expect(runEvaluation({ evaluator: 'gsm8k', settings: { ...settings, k: [8] }, completions })).rejects.toThrow(
      /maj@8 needs at least 8/,
    );
  });

  it('accepts samples keyed by index or question_id and rejects unknown ids', async () => {
    await expect(
      runEvaluation({ evaluator: 'gsm8k', settings, completions: new Map([['99999', ['1']]]) }),
    ).rejects.toThrow(/task "99999"/);
  });
});

describe.skipIf(!svamp)(svamp ? 'svamp' : noData('svamp/SVAMP.json'), () => {
  it('scores the gold answers 1.0', async () => {
    const problems = loadSvamp(dataDir);
    expect(problems).toHaveLength(1000);
    const completions = new Map(problems.map((p) => [p.id, [`The answer is ${p.gold}`]]));
    expect(
      (await runEvaluation({ evaluator: 'svamp', settings: { dataDir }, completions })).result.metrics.accuracy,
    ).toBe(1);
  });
});
