import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GenerationRequest, ModelAdapter } from '@yuan/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHumanEval, runEvaluation, TESTGEN_INSTRUCTION, withYuanPrompts, yuanHumanEvalCode } from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';

const have = hasData('humaneval/HumanEval.jsonl.gz') && hasData('yuan-eval/HumanEval-textprompts.jsonl');
const out = mkdtempSync(path.join(os.tmpdir(), 'yuan-he-yuan-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('YUAN HumanEval post-processing', () => {
  it('takes the code after the first ```python and cuts at the spec markers', () => {
    const prompt = '问题描述：加一。\n代码如下：\n```python\ndef inc(x):\n';
    expect(yuanHumanEvalCode(prompt, '    return x + 1\n```\n\n这段代码把 x 加一。')).toBe(
      '\ndef inc(x):\n    return x + 1',
    );
    expect(yuanHumanEvalCode(prompt, '    return x + 1<n><n>print(inc(1))')).toBe('\ndef inc(x):\n    return x + 1\n');
    expect(yuanHumanEvalCode(prompt, '    """加一"""\n    return x + 1\n# 测试\nassert inc(1) == 2')).toBe(
      '\ndef inc(x):\n    \n    return x + 1',
    );
    expect(yuanHumanEvalCode(prompt, '    return x + 1\nif __name__ == "__main__":\n    pass')).toBe(
      '\ndef inc(x):\n    return x + 1',
    );
  });
});

/** Test double: answers the YUAN code prompt with fixed candidates, and a test-generation prompt with asserts built from the task's own examples. */
function scriptedModel(candidates: (prompt: string) => string[]): ModelAdapter & { testPrompts: number } {
  const model = {
    name: 'scripted',
    testPrompts: 0,
    async generate(req: GenerationRequest) {
      if (req.prompt.startsWith(TESTGEN_INSTRUCTION)) {
        model.testPrompts++;
        const task = req.prompt.slice(req.prompt.lastIndexOf('问题描述：'));
        const asserts = [...task.matchAll(/>>> (.+)\n(.+)/g)].map((m) => `assert ${m[1]} == ${m[2]}`);
        return Array.from({ length: req.n ?? 1 }, () => `${asserts.join('\n')}\n`);
      }
      return candidates(req.prompt).slice(0, req.n ?? 1);
    },
  };
  return model;
}

describe.skipIf(!have)(have ? 'humaneval --protocol yuan' : noData('yuan-eval/HumanEval-textprompts.jsonl'), () => {
  const problems = have ? withYuanPrompts(dataDir, loadHumanEval(dataDir)) : [];
  const settings = { dataDir, workers: 2 };

  it('scores the 164 canonical solutions, answered the way YUAN answers, pass@1 = 1.0', async () => {
    expect(problems).toHaveLength(164);
    expect(problems[0]!.prompt.startsWith('问题描述：')).toBe(true);
    // the answer continues the prompt's open ```python block, closes it and may explain; some use <n> for newlines.
    // Blank lines before the body are dropped (HumanEval/81's canonical starts with one): YUAN's post-processing ends a
    // function at its first blank line, and a model's answer does not open with one.
    const answer = (p: (typeof problems)[number]) =>
      `${p.canonicalSolution.replace(/^\s*\n/, '')}\n\`\`\`\n\n以上代码实现了该函数。`;
    const completions = new Map(problems.map((p, i) => [String(i), [answer(p).replace(/\n/g, i % 2 ? '<n>' : '\n')]]));
    const { result, samplesFile } = await runEvaluation({
      evaluator: 'humaneval',
      options: { protocol: 'yuan' },
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
    expect(result.details?.paper).toMatchObject({ protocol: 'yuan', reported: { '102B': 67.1 } });
    const wrong = new Map(problems.slice(0, 10).map((p, i) => [String(i), ['    return None\n```']]));
    expect(
      (await runEvaluation({ evaluator: 'humaneval', options: { protocol: 'yuan' }, settings, completions: wrong }))
        .result.metrics['pass@1'],
    ).toBe(0);
  });

  it('selects by generated tests: the candidate passing most model-written tests wins over wrong ones', async () => {
    const byPrompt = new Map(problems.map((p) => [p.prompt, p]));
    const model = scriptedModel((prompt) => {
      const p = byPrompt.get(prompt)!;
      // two wrong candidates first (one that only raises, one that returns None), the right one last
      return ['    raise NotImplementedError\n```', '    return None\n```', `${p.canonicalSolution}\n\`\`\``];
    });
    const { result } = await runEvaluation({
      evaluator: 'humaneval',
      options: { protocol: 'yuan', select: 'tests' },
      settings: { ...settings, n: 3, limit: 4 },
      model,
    });
    expect(model.testPrompts).toBe(4);
    expect(result.metrics['pass@1']).toBeCloseTo(1 / 3, 12);
    expect(result.metrics['pass@1_first']).toBe(0);
    expect(result.metrics['pass@1_selected']).toBe(1);
  });

  it('selects by generated tests counted by the pass rule: printed counts and early exits score nothing, output does not hide a pass', async () => {
    const byPrompt = new Map(problems.map((p) => [p.prompt, p]));
    const model = scriptedModel((prompt) => {
      const p = byPrompt.get(prompt)!;
      const body = p.canonicalSolution.replace(/^\s*\n/, '');
      return [
        // claims every test passed on stdout, then leaves before the test ends
        '    print("__yuan_tests_passed__ 99")\n    import os\n    os._exit(0)\n```',
        // leaves with status 0 inside the first test
        '    import sys\n    sys.exit(0)\n```',
        // right, but prints a megabyte per call (more than the sandbox keeps of stdout)
        `    print("x" * (1 << 20))\n${body}\n\`\`\``,
      ];
    });
    const { result } = await runEvaluation({
      evaluator: 'humaneval',
      options: { protocol: 'yuan', select: 'tests' },
      settings: { ...settings, n: 3, limit: 3 },
      model,
    });
    expect(result.metrics['pass@1']).toBeCloseTo(1 / 3, 12);
    expect(result.metrics['pass@1_first']).toBe(0);
    expect(result.metrics['pass@1_selected']).toBe(1);
  });

  it('refuses selection by tests without a model to write them', async () => {
    const completions = new Map([['0', ['    return None']]]);
    await expect(
      runEvaluation({ evaluator: 'humaneval', options: { protocol: 'yuan', select: 'tests' }, settings, completions }),
    ).rejects.toThrow(/needs --model or --endpoint/);
  });
});
