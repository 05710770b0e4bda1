import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHumanEval, runEvaluation } from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';

const have = hasData('humaneval/HumanEval.jsonl.gz');
const out = mkdtempSync(path.join(os.tmpdir(), 'yuan-he-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(!have)(have ? 'humaneval' : noData('humaneval/HumanEval.jsonl.gz'), () => {
  const problems = have ? loadHumanEval(dataDir) : [];
  const settings = { dataDir, workers: 2 };

  it('scores the 164 canonical solutions pass@1 = 1.0 and logs every sample', async () => {
    expect(problems).toHaveLength(164);
    const completions = new Map(problems.map((p) => [p.id, [p.canonicalSolution]]));
    const { result, samplesFile, summaryFile } = await runEvaluation({
      evaluator: 'humaneval',
      settings,
      completions,
      outputDir: out,
    });
    const failed = readFileSync(samplesFile!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => !r.passed);
    expect(failed.map((r) => `${r.task_id}: ${r.stderr_tail}`)).toEqual([]);
    expect(result.metrics['pass@1']).toBe(1);
    expect(result.count).toBe(164);
    const summary = JSON.parse(readFileSync(summaryFile!, 'utf8'));
    expect(summary.metrics['pass@1']).toBe(1);
    expect(summary.records).toBe(164);
  });

  it('scores empty and wrong completions 0', async () => {
    const empty = new Map(problems.slice(0, 25).map((p) => [p.id, ['']]));
    const wrong = new Map(problems.slice(0, 25).map((p) => [p.id, ['    return None\n']]));
    expect(
      (await runEvaluation({ evaluator: 'humaneval', settings, completions: empty })).result.metrics['pass@1'],
    ).toBe(0);
    expect(
      (await runEvaluation({ evaluator: 'humaneval', settings, completions: wrong })).result.metrics['pass@1'],
    ).toBe(0);
  });

  it('computes pass@k over several samples and refuses k > n', async () => {
    const mixed = new Map(
      problems.slice(0, 6).map((p) => [p.id, ['    raise ValueError()\n', p.canonicalSolution, '']]),
    );
    const { result } = await runEvaluation({
      evaluator: 'humaneval',
      settings: { ...settings, k: [1, 2, 3] },
      completions: mixed,
    });
    expect(result.metrics['pass@1']).toBeCloseTo(1 / 3, 12);
    expect(result.metrics['pass@2']).toBeCloseTo(2 / 3, 12);
    expect(result.metrics['pass@3']).toBe(1);
    await expect(
      runEvaluation({ evaluator: 'humaneval', settings: { ...settings, k: [10] }, completions: mixed }),
    ).rejects.toThrow(/pass@10 needs at least 10/);
  });

  it('keeps going through hostile completions and counts only the honest one', async () => {
    const p = problems[0]!;
    const hostile = [
      '    while True:\n        pass\n',
      '    import os\n    while True:\n        os.fork()\n',
      '    x = bytearray(10 * 1024 ** 3)\n    return True\n',
      '    import os\n    os.kill(os.getppid(), 9)\n    return True\n',
      p.canonicalSolution,
    ];
    const { result } = await runEvaluation({
      evaluator: 'humaneval',
      options: { timeoutMs: 1500 },
      settings: { ...settings, k: [1, 5] },
      completions: new Map([[p.id, hostile]]),
    });
    expect(result.metrics['pass@1']).toBeCloseTo(1 / 5, 12);
    expect(result.metrics['pass@5']).toBe(1);
  });

  it('passes a sample only when check() returned: early exits fail, __main__ blocks and doctest do not matter', async () => {
    const p = problems[0]!;
    const samples = [
      ['    import sys\n    sys.exit(0)\n', 'exited before check() returned'],
      ['    import os\n    os._exit(0)\n', 'exited before check() returned'],
      [`${p.canonicalSolution}\nraise SystemExit(0)\n`, 'exited before check() returned'],
      ['    raise SystemExit(3)\n', 'failed'],
      ['    exit(0)\n', 'exited before check() returned'],
      [`${p.canonicalSolution}\n\nif __name__ == "__main__":\n    input()\n    raise RuntimeError()\n`, 'passed'],
      [`${p.canonicalSolution}\n\nimport doctest\ndoctest.testmod()\n`, 'passed'],
    ] as const;
    const { result, samplesFile } = await runEvaluation({
      evaluator: 'humaneval',
      settings: { ...settings, k: [1] },
      completions: new Map([[p.id, samples.map(([c]) => c)]]),
      outputDir: out,
    });
    const records = readFileSync(samplesFile!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .sort((a, b) => a.sample - b.sample);
    expect(records.map((r) => r.result)).toEqual(samples.map(([, verdict]) => verdict));
    expect(records.map((r) => r.passed)).toEqual(samples.map(([, verdict]) => verdict === 'passed'));
    expect(result.metrics['pass@1']).toBeCloseTo(2 / 7, 12);
  });

  it('reads code out of a fenced chat answer with completion: code-block', async () => {
    const p = problems[2]!;
    const chat = `Here you go:\n\`\`\`python\ndef ${p.entryPoint}(number: float) -> float:\n    return number % 1.0\n\`\`\`\nDone.`;
    const completions = new Map([[p.id, [chat]]]);
    expect((await runEvaluation({ evaluator: 'humaneval', settings, completions })).result.metrics['pass@1']).toBe(0);
    expect(
      (await runEvaluation({ evaluator: 'humaneval', options: { completion: 'code-block' }, settings, completions }))
        .result.metrics['pass@1'],
    ).toBe(1);
  });

  it('rejects samples for unknown tasks with a clear error', async () => {
    await expect(
      runEvaluation({ evaluator: 'humaneval', settings, completions: new Map([['HumanEval/999', ['x']]]) }),
    ).rejects.toThrow(/samples name task "HumanEval\/999"/);
  });
});
