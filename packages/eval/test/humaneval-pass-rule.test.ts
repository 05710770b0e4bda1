import { afterAll, describe, expect, it } from 'vitest';
import { HUMANEVAL_MODULE, humanEvalProgram, humanEvalVerdict, Sandbox, type HumanEvalProblem } from '../src/index.js';

// A problem in HumanEval's shape (prompt with a doctest, tests, entry point), so these run without the data set.
const problem: HumanEvalProblem = {
  id: 'PassRule/0',
  prompt: 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n',
  canonicalSolution: '    return a + b\n',
  test: 'def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n    assert candidate(10, 5) == 15\n',
  entryPoint: 'add',
};
const correct = problem.canonicalSolution;

// Each completion with openai/human-eval's verdict (its check_correctness: `exec` of prompt + completion + tests +
// `check(add)` in a fresh globals dict, passed only when that exec returned within the time limit; `exit`/`quit` are
// None there, and an `os._exit` leaves no result, which it reports as "timed out").
const cases: Record<string, { completion: string; passed: boolean }> = {
  'the correct body': { completion: correct, passed: true },
  'a wrong body': { completion: '    return a - b\n', passed: false },
  'sys.exit(0) in the function': { completion: '    import sys\n    sys.exit(0)\n', passed: false },
  'exit(0) in the function': { completion: '    exit(0)\n', passed: false },
  'quit() in the function': { completion: '    quit()\n', passed: false },
  'os._exit(0) in the function': { completion: '    import os\n    os._exit(0)\n', passed: false },
  'raise SystemExit(0) in the function': { completion: '    raise SystemExit(0)\n', passed: false },
  'SystemExit at module level after a correct body': { completion: `${correct}\nraise SystemExit(0)\n`, passed: false },
  'sys.exit(0) at module level after a correct body': {
    completion: `${correct}\nimport sys\nsys.exit(0)\n`,
    passed: false,
  },
  'os._exit(0) at module level after a correct body': {
    completion: `${correct}\nimport os\nos._exit(0)\n`,
    passed: false,
  },
  'a __main__ block that calls input() and raises (correct body)': {
    completion: `${correct}\n\nif __name__ == "__main__":\n    x = input()\n    raise RuntimeError("only as a script")\n`,
    passed: true,
  },
  'a __main__ block that exits 0 (wrong body)': {
    completion: '    return 0\n\n\nif __name__ == "__main__":\n    import sys\n    sys.exit(0)\n',
    passed: false,
  },
  'input() at module level inside a __main__ guard': {
    completion: `${correct}\nif __name__ == "__main__":\n    input()\n`,
    passed: true,
  },
  'doctest.testmod() at module level': {
    completion: `${correct}\n\nimport doctest\ndoctest.testmod()\n`,
    passed: true,
  },
  'megabytes of output, correct': {
    completion: '    print("x" * (1 << 20))\n    return a + b\n\n\nfor _ in range(4):\n    print("y" * (1 << 20))\n',
    passed: true,
  },
  'a correct body, then the entry point redefined wrong': {
    completion: `${correct}\n\ndef add(a, b):\n    return a * b\n`,
    passed: false,
  },
  'a wrong body, then the entry point redefined right': {
    completion: '    return 0\n\n\ndef add(a, b):\n    return b + a\n',
    passed: true,
  },
};

// Run the way the humaneval evaluator runs them (fork servers) and through one-shot prepared sandboxes.
describe.each([
  ['fork server', async () => (await Sandbox.create({ limits: { timeoutMs: 3000 } })).serve(1)],
  ['one-shot sandbox', async () => Sandbox.create({ limits: { timeoutMs: 3000 } })],
])('HumanEval pass rule through a %s', (_label, make) => {
  let sandbox: Sandbox | undefined;
  const get = async () => (sandbox ??= await make());
  afterAll(async () => sandbox?.close());

  it.each(Object.keys(cases))('%s gets human-eval’s verdict', async (name) => {
    const { completion, passed } = cases[name]!;
    const result = await (await get()).run(humanEvalProgram(problem, completion), { module: HUMANEVAL_MODULE });
    expect(humanEvalVerdict(result) === 'passed', `${name}: ${result.status} ${result.stderr.slice(-300)}`).toBe(
      passed,
    );
    expect(result.status).not.toBe('setup-failed');
  });

  it('names an exit before check() returned, whatever its exit status', async () => {
    const early = await (
      await get()
    ).run(humanEvalProgram(problem, '    import os\n    os._exit(0)\n'), { module: HUMANEVAL_MODULE });
    expect(early.status).toBe('ok');
    expect(humanEvalVerdict(early)).toBe('exited before check() returned');
    const raised = await (
      await get()
    ).run(humanEvalProgram(problem, '    raise ValueError()\n'), { module: HUMANEVAL_MODULE });
    expect(humanEvalVerdict(raised)).toBe('failed');
  });

  it('runs model-written tests one by one, each judged by its own token', async () => {
    const tests = [
      'assert add(1, 2) == 3',
      'assert add(1, 2) == 4',
      'import sys\nsys.exit(0)',
      'assert add(0, 0) == 0',
      'import os\nos._exit(0)',
      'assert True',
    ];
    const code = `def add(a, b):\n    return a + b\n\nif __name__ == "__main__":\n    raise SystemExit(input())\n`;
    const result = await (await get()).run(code, { module: HUMANEVAL_MODULE, checks: tests });
    expect(result.completed).toBe(true);
    // the os._exit ends the process: the check after it never runs
    expect(result.checks).toEqual([true, false, false, true, false, false]);
    const broken = await (
      await get()
    ).run('def add(a, b):\n    return a + b\nraise SystemExit(0)\n', { module: HUMANEVAL_MODULE, checks: tests });
    expect(broken.completed).toBe(false);
    expect(broken.checks).toEqual(tests.map(() => false)); // checks run only after the program ran to its end
  });

  it('refuses a module name that is not an identifier, and too many checks', async () => {
    await expect((await get()).run('pass', { module: 'a.b' })).rejects.toThrow(
      /module "a.b": expected a Python identifier/,
    );
    await expect((await get()).run('pass', { checks: Array.from({ length: 257 }, () => 'pass') })).rejects.toThrow(
      /checks: expected at most 256 strings/,
    );
  });
});
