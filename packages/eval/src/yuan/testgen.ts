import { fromYuanText } from './files.js';

/** The instruction of the paper's Appendix B test-generation prompt. */
export const TESTGEN_INSTRUCTION = '根据以下问题描述与示例，生成单元测试用例。';

// Two worked examples (written for this project, on functions outside HumanEval) in the Appendix B pattern.
const SHOTS = [
  {
    task: '问题描述：返回列表中所有偶数之和。\n示例：\n>>> sum_even([1, 2, 3, 4])\n6',
    tests: [
      'assert sum_even([1, 2, 3, 4]) == 6',
      'assert sum_even([]) == 0',
      'assert sum_even([1, 3, 5]) == 0',
      'assert sum_even([-2, 2, 10]) == 10',
    ],
  },
  {
    task: "问题描述：把字符串中每个单词的首字母改为大写，单词之间以一个空格分隔。\n示例：\n>>> title_words('hello world')\n'Hello World'",
    tests: [
      "assert title_words('hello world') == 'Hello World'",
      "assert title_words('') == ''",
      "assert title_words('a') == 'A'",
      "assert title_words('abc DEF') == 'Abc DEF'",
    ],
  },
];

/** The description and examples of a YUAN HumanEval text prompt: everything before `代码如下：`. */
export function taskDescription(textPrompt: string): string {
  const at = textPrompt.indexOf('代码如下：');
  return (at >= 0 ? textPrompt.slice(0, at) : textPrompt).trim();
}

/**
 * The few-shot prompt that asks the model for unit tests of a task (PAPER Appendix B pattern): the instruction, two
 * worked examples (description + examples → a ```` ```python ```` block of `assert` lines), then the task's description
 * and an opened block for the model to continue.
 */
export function testGenerationPrompt(textPrompt: string): string {
  const shot = (task: string, tests: string[] | null) =>
    `${task}\n单元测试：\n\`\`\`python\n${tests ? `${tests.join('\n')}\n\`\`\`\n\n` : ''}`;
  return `${TESTGEN_INSTRUCTION}\n\n${SHOTS.map((s) => shot(s.task, s.tests)).join('')}${shot(taskDescription(textPrompt), null)}`;
}

/** The `assert` lines of a generated test block (`<n>` read as newline), deduplicated, at most `max`. */
export function parseGeneratedTests(text: string, max = 20): string[] {
  const body = fromYuanText(text).split('\n```')[0]!;
  const tests = body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^assert[\s(]/.test(l));
  return [...new Set(tests)].slice(0, max);
}
