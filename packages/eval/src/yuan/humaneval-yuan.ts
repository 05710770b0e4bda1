import { fromYuanText } from './files.js';

/** From the first `def ` line to the first blank line after it (the rest when none), as YUAN's `parse_first_func`. */
function firstFunction(code: string): string | null {
  const lines = code.split('\n');
  let first = 0;
  let last = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith('def ')) {
      if (first === 0) first = i;
      else break;
    }
    if (lines[i] === '' && first !== 0) {
      last = i;
      break;
    }
  }
  if (last === 0) last = lines.length - 1;
  return first === 0 ? null : lines.slice(first, last + 1).join('\n');
}

/** Removes the first `"""…"""` (else `'''…'''`) block and every other occurrence of that same text. */
function dropFirstDocstring(x: string): string {
  for (const q of ['"""', "'''"]) {
    if (x.split(q).length - 1 >= 2) {
      const a = x.indexOf(q);
      const b = x.indexOf(q, a + 3);
      return x.split(x.slice(a, b + 3)).join('');
    }
  }
  return x;
}

const cutAt = (s: string, marker: string) => (s.indexOf(marker) > 0 ? s.slice(0, s.indexOf(marker)) : s);

/**
 * The code YUAN 2.0 ran for a HumanEval answer (`tasks/humaneval/eval_humaneval.py`, YUAN2-SPEC §7): of the prompt
 * followed by the completion (`<n>` read as newline), the text after the first ```` ```python ````, with blank lines
 * inside bodies squeezed, the first docstring removed, the first function kept with what precedes it (imports), a
 * second `def` cut when nothing else ends the code, and cut at the first `\nprint`, `\n# 示例`, `\n```` ``` ````,
 * `\n# 测试`, `\n# 单元测试`, `\n#` and `\nif`. The result already holds the signature, so the check program leaves the
 * prompt out (see `yuanCheckProgram`).
 */
export function yuanHumanEvalCode(prompt: string, completion: string): string {
  const response = `${prompt}${fromYuanText(completion)}`;
  const at = response.indexOf('```python');
  let x = at >= 0 ? response.slice(at + 9) : response;
  x = x
    .split('\nFIX = """\nAdd more test cases.\n"""')
    .join('')
    .split('\n\n\ndef')
    .join('\ndef')
    .split('\n    \n\n    ')
    .join('\n    \n    ')
    .split('\n\n    ')
    .join('\n    ')
    .split('\n\n\n')
    .join('\n\n')
    .split('"""\n        ')
    .join('"""\n    ')
    .split('\n```python')
    .join('');
  x = dropFirstDocstring(x);
  const fenced = /```python\n([\s\S]*?)\n```/.exec(x)?.[1] ?? firstFunction(x);
  let code =
    fenced !== null && fenced !== undefined ? x.slice(0, Math.max(0, x.indexOf(fenced.slice(0, 10)))) + fenced : x;
  const count = (s: string) => code.split(s).length - 1;
  if (count('\ndef') > 1 && count('\n```') < 1 && count('\n#') < 1 && count('\nif') < 1) {
    const second = code.indexOf('\ndef', code.indexOf('\ndef') + 1);
    code = code.split(code.slice(second)).join('\n');
  }
  for (const marker of ['\nprint', '\n# 示例', '\n```', '\n# 测试', '\n# 单元测试', '\n#', '\nif'])
    code = cutAt(code, marker);
  return code;
}

/** The check program of YUAN's modified harness: the code (which holds the signature), the tests, `check(entry)`; no prompt. */
export function yuanCheckProgram(code: string, test: string, entryPoint: string): string {
  return `${code}\n${test}\ncheck(${entryPoint})`;
}
