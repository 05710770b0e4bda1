import { describe, expect, it } from 'vitest';
import {
  extractYuanChoice,
  extractYuanCloze,
  loadSepFile,
  loadTruthfulZh,
  mathClozeEqual,
  mathqaGold,
  scoreTruthfulZh,
  scoreYuanGsm8k,
  seededPermutation,
} from '../src/index.js';
import { dataDir, hasData, noData } from './shared.js';

const yuan = hasData('yuan-eval/mathcloze.txt');

describe('YUAN GSM8K scorer (score_gsm8k.py rules)', () => {
  it('reads the answer after the last = of the last <n> line, \\boxed{} and \\frac', () => {
    expect(scoreYuanGsm8k('杰登有70美元<n>还需要200-70-45=85美元。', '85').correct).toBe(true);
    expect(scoreYuanGsm8k('所以答案是\\boxed{85}。', '85').correct).toBe(true);
    expect(scoreYuanGsm8k('每人分到\\frac{17}{2}<n>', '8.5').correct).toBe(true);
    expect(scoreYuanGsm8k('x=3<n>所以答案是<n>', '3').correct).toBe(true); // last line has no digit: the one before
    expect(scoreYuanGsm8k('a\nb = 1,200 元', '1200').correct).toBe(true); // real newlines read as <n>
  });
  it('matches any of the last three numbers, but not the gold inside a bigger number', () => {
    expect(scoreYuanGsm8k('共 12 个，每个 5 元，总计 60 元，找零 40', '60').correct).toBe(true);
    expect(scoreYuanGsm8k('得 60.0 元', '60').correct).toBe(true); // 60.0 is not the whole number 60, but equal as a float
    expect(scoreYuanGsm8k('结果是 60.0，加 1 是 61，加 1 是 62，加 1 是 63', '60').correct).toBe(false); // not among the last three
    expect(scoreYuanGsm8k('答案是185', '85').correct).toBe(false);
    expect(scoreYuanGsm8k('答案是85.5', '85').correct).toBe(false);
    expect(scoreYuanGsm8k('没有数字', '85')).toMatchObject({ correct: false, answer: null });
  });
});

describe('YUAN Math-QA letters and Math-Cloze comparison', () => {
  it('extracts letters after YUAN cues', () => {
    expect(extractYuanChoice('解析：……<n>故选：D')).toEqual(['D']);
    expect(extractYuanChoice('由上可知正确答案为B。')).toEqual(['B']);
    expect(extractYuanChoice('故选A和D')).toEqual(['A', 'D']);
    expect(extractYuanChoice('$\\rm{C}$')).toEqual(['C']);
    expect(extractYuanChoice('Ｃ')).toEqual(['C']);
    expect(extractYuanChoice('我不知道')).toEqual([]);
    expect(mathqaGold('答案：A B D。')).toEqual(['A', 'B', 'D']);
  });
  it('compares cloze answers mathematically, not as strings', () => {
    expect(mathClozeEqual('0.5', '\\frac {1}{2}')).toBe(true);
    expect(mathClozeEqual('\\sqrt{8}', '2\\sqrt {2}')).toBe(true);
    expect(mathClozeEqual('\\dfrac{2\\sqrt5}{5}', '\\frac {2\\sqrt {5}}{5}')).toBe(true);
    expect(mathClozeEqual('2x-y=0', 'y=2x')).toBe(true);
    expect(mathClozeEqual('[1/3, 1.5]', '\\left [\\frac {1}{3},\\frac {3}{2}\\right]')).toBe(true);
    expect(mathClozeEqual('(0,1)', '(0,1]')).toBe(false);
    expect(mathClozeEqual('\\frac{2n}{n+1}', '2-\\frac{2}{n+1}')).toBe(true);
    expect(mathClozeEqual('1-5i', '1-5\\mathrm {i}')).toBe(true);
    expect(mathClozeEqual('5', '5;10')).toBe(false);
    expect(mathClozeEqual('10;5', '5;10')).toBe(false);
    expect(mathClozeEqual('\\frac{1}{3}', '\\frac {1}{2}')).toBe(false);
    expect(extractYuanCloze('……<n>故答案为：$\\frac{1}{2}$。')).toBe('\\frac{1}{2}');
    expect(extractYuanCloze('所以 \\boxed{5} 和 \\boxed{10}')).toBe('5;10');
  });
});

describe('YUAN TruthfulQA (Chinese) scoring and shuffle', () => {
  it('is exact match of the text up to the first 。', () => {
    expect(scoreTruthfulZh('正确答案是 B 选项。因为……', 'B')).toEqual({ said: 'B', correct: true });
    expect(scoreTruthfulZh('正确答案是A选项。', 'B').correct).toBe(false);
    expect(scoreTruthfulZh('我认为正确答案是B选项。', 'B').correct).toBe(false);
    expect(scoreTruthfulZh('正确答案是B选项', 'B').correct).toBe(false);
  });
  it('permutes with a fixed seed', () => {
    expect(seededPermutation(6, 7)).toEqual(seededPermutation(6, 7));
    expect([...seededPermutation(6, 7)].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe.skipIf(!yuan)(yuan ? 'scorers against the gold of every YUAN file' : noData('yuan-eval'), () => {
  it('GSM8K (zh and en): gold in YUAN answer styles scores 1, a wrong number 0', () => {
    for (const file of ['gsm8k_Cn.txt', 'gsm8k_En.txt']) {
      const { items, bad } = loadSepFile(dataDir, file);
      expect(items.length + bad.length).toBe(1319);
      expect(bad).toEqual([]);
      const styles = [
        (g: string) => `详细分析：<n>第一步……<n>所以一共是 3+4=${g}`,
        (g: string) => `计算过程如下。<n>综上，答案是\\boxed{${g}}。<n>`,
        (g: string) => `The total is 2 * x.\nSo the answer is $${g}$.`,
      ];
      items.forEach((r, i) => {
        const style = styles[i % styles.length]!;
        expect(scoreYuanGsm8k(style(r.answer), r.answer).correct, `${file} ${r.id}`).toBe(true);
        const wrong = String(Number(r.answer.replace(/,/g, '')) + 1);
        expect(scoreYuanGsm8k(style(wrong), r.answer).correct, `${file} ${r.id} wrong`).toBe(false);
      });
      // \frac{2g}{2} is g as a value
      const r = items.find((x) => /^\d+$/.test(x.answer))!;
      expect(scoreYuanGsm8k(`每人\\frac{${2 * Number(r.answer)}}{2}`, r.answer).correct).toBe(true);
    }
  });

  it('Math-QA: gold letters after 故选 / 答案为 / in \\rm{} score 1, another letter 0', () => {
    const { items, bad } = loadSepFile(dataDir, 'mathqa.txt');
    expect(items).toHaveLength(351);
    expect(bad).toEqual([]);
    items.forEach((r, i) => {
      const gold = mathqaGold(r.answer);
      expect(gold.length).toBeGreaterThan(0);
      const letters = gold.join(i % 2 ? '、' : '');
      const says = [
        `解析：由题意……<n>故选${letters}。`,
        `分析……<n>所以正确答案为${letters}`,
        `……<n>故选：$\\rm{${gold.join('')}}$`,
      ][i % 3]!;
      expect(extractYuanChoice(says, r.question), r.id).toEqual(gold);
      const other = 'ABCD'.split('').find((l) => !gold.includes(l))!;
      expect(extractYuanChoice(`解析……<n>故选${other}。`, r.question)).not.toEqual(gold);
    });
  });

  it('Math-Cloze: the gold, ;-joined, in YUAN styles scores 1, an altered answer 0', () => {
    const { items, bad } = loadSepFile(dataDir, 'mathcloze.txt');
    expect(items).toHaveLength(118);
    expect(bad).toEqual([]);
    items.forEach((r, i) => {
      const parts = r.answer.split(';');
      const says =
        i % 2
          ? `解：……<n>故答案为：${parts.map((p) => `$${p}$`).join('；')}。`
          : `解：……<n>所以 ${parts.map((p) => `\\boxed{${p}}`).join('，')}`;
      expect(mathClozeEqual(extractYuanCloze(says), r.answer), `${r.id}: ${says} → ${extractYuanCloze(says)}`).toBe(
        true,
      );
      const wrong = parts.map((p, j) => (j === parts.length - 1 ? `${p}+1` : p)).join(';');
      expect(mathClozeEqual(wrong, r.answer), `${r.id} wrong: ${wrong}`).toBe(false);
    });
  });

  it('TruthfulQA zh: 817 questions; shuffling keeps the gold reachable and moves it off A', () => {
    const plain = loadTruthfulZh(dataDir, null);
    expect(plain.items).toHaveLength(817);
    expect(plain.bad).toEqual([]);
    expect(plain.items.every((q) => q.gold === 'A')).toBe(true);
    const shuffled = loadTruthfulZh(dataDir, 1234);
    shuffled.items.forEach((q, i) => {
      const original = plain.items[i]!;
      expect(q.options[q.gold.charCodeAt(0) - 65]).toBe(original.options[0]);
      expect([...q.options].sort()).toEqual([...original.options].sort());
    });
    const share = shuffled.items.filter((q) => q.gold === 'A').length / 817;
    expect(share).toBeLessThan(0.5);
    expect(loadTruthfulZh(dataDir, 1234).items.map((q) => q.gold)).toEqual(shuffled.items.map((q) => q.gold));
  });
});
