import { toYuanText } from './files.js';

const L = '[ABCDEF]+';
const OPEN = '[:：\\(（]*?';
// Cue groups in the order YUAN's score_mathqa.py tries them; the last match of the first group that matches wins.
const CUE_GROUPS: RegExp[] = [
  new RegExp(`故选${OPEN}(${L})`, 'g'),
  new RegExp(
    `(?:故答案[为是][：:（\\(]?|故本题选择|故答案应选|答案选项[为是]|正确选项[为是]|正确答案[为是]|正确说法[为是]|答案[是为]选项)${OPEN}(${L})`,
    'g',
  ),
  new RegExp(
    `(?:故填[：:（\\(]|答案[为是]|故选择|答案[：:（\\(]|故应选|所以选|本题选|因此选|答案选)${OPEN}(${L})`,
    'g',
  ),
  new RegExp(
    `(?:故本题选|故选项[为是]|答案选[：:（\\(]|故应选[：:（\\(]|故答案选|故此题选|故选答案|[此本]题选择|答案选择|答案应为)${OPEN}(${L})`,
    'g',
  ),
  new RegExp(
    `(?:本题应选择：|本题的答案选|正确的选项[为是]|正确的说法[为是]|正确的叙述[为是]|正确的表述[是为]|正确的做法[是为]|正确的陈述[是为])${OPEN}(${L})`,
    'g',
  ),
  new RegExp(`故(${L})[选项]?符合题意`, 'g'),
  new RegExp(`故(${L})入选`, 'g'),
  new RegExp(`选项(${L})符合`, 'g'),
  new RegExp(`<n>[故选](${L})`, 'g'),
  new RegExp(`选(${L})[.。]`, 'g'),
  new RegExp(`(?:故为|应选|选择)${OPEN}(${L})`, 'g'),
  /answeris\(([ABCD])\)/gi,
];

const sortedLetters = (s: string) => [...new Set(s.match(/[A-F]/g) ?? [])].sort();

/**
 * The option letters a Gaokao-Math-QA answer picks, sorted (`['A','D']` for "故选AD"), or [] when none is found; after
 * YUAN 2.0's `tasks/AGIEval-Math/score_mathqa.py` (YUAN2-SPEC §7): full-width letters and `\rm{X}`, `\text{X}`,
 * `\mathrm{(X)}`, `\textbf{(X)}` are unwrapped, "A和D"/"A、D" joined; an answer that is only letters is taken as is;
 * else cue phrases are tried in the script's order ("故选X", "故答案为X", "答案：X", "正确答案是X", "选X。", ...); else
 * "X正确" on the last lines; else a single option mentioned as "选项X" / "（X）". The question is used to tell
 * questions asking for the wrong statement ("不正确"), where "X错误" counts instead of "X正确".
 */
export function extractYuanChoice(completion: string, question = ''): string[] {
  let a = toYuanText(completion.trim()).replace(/(?:\s*<n>\s*)+$/, '');
  a = a.replace(/[ $]/g, '').replace(/Ａ/g, 'A').replace(/Ｂ/g, 'B').replace(/Ｃ/g, 'C').replace(/Ｄ/g, 'D');
  if (/^[ABCD]+$/.test(a)) return sortedLetters(a);
  a = a
    .replace(/<n>股癣/g, '<n>故选')
    .replace(/弧选/g, '故选')
    .replace(/\\rm\s*\{([A-Z]+)\}/g, '$1')
    .replace(/(?<=[ABCD])[和、](?=[ABCD])/g, '')
    .replace(/\\mathrm\s*\{\(?([A-Z]+)\)?\}/g, '$1.')
    .replace(/\\textbf\s*\{\(([A-Z]+)\)\}/g, '$1.')
    .replace(/\\mathbf\s*\{([^{]*?)\}/g, '$1')
    .replace(/(?<=[：:])<n>(?=[ABCD]\.|\([ABCD]\))/g, '')
    .replace(/([故应本题答案为是正确的选项择]{3,})<n>(?=[ABCD])/g, '$1')
    .replace(/\\text\s*\{\(?([A-Z]+)\)?\}/g, '$1');
  if (/^[ABCD]+$/.test(a)) return sortedLetters(a);
  for (const re of CUE_GROUPS) {
    const found = [...a.matchAll(re)];
    if (found.length) return sortedLetters(found[found.length - 1]![1]!);
  }
  const asksWrong = /错误|不合理|不正确|不[是会]|不发生|False|无法推断/.test(question.replace(/ /g, ''));
  const verdict = asksWrong ? '错误' : '正确';
  const lines = a.split('<n>');
  for (const line of lines.slice(-2).reverse()) {
    const said = [
      ...line.matchAll(new RegExp(`(?:故|选项)?[:：\\(（]*?([ABCDEF]+)[\\)）]?[是为选项]?${verdict}`, 'g')),
    ];
    if (said.length) return sortedLetters(said.map((m) => m[1]).join(''));
  }
  const mentions = [...`<n>${a}`.matchAll(/选项([ABCD])|（([ABCD])）/g)].map((m) => m[1] ?? m[2]!);
  if (new Set(mentions).size === 1) return [mentions[0]!];
  return [];
}

/** The gold letters of a mathqa.txt answer (`答案：AD。`, `答案：A B D。`), sorted; [] when it has none. */
export function mathqaGold(answer: string): string[] {
  const m = /答案[：:]\s*([A-F](?:\s*[A-F])*)/.exec(answer);
  return m ? sortedLetters(m[1]!) : [];
}
