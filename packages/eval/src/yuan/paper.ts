/**
 * What the YUAN 2.0 paper reports (PAPER Tables 2–6 as summarised in YUAN2-SPEC §7), in percent: greedy results of
 * the 2B, 51B and 102B models and the 102B model with self-consistency (SC). TruthfulQA is reported for 102B only.
 */
export const PAPER_RESULTS: Record<
  string,
  { metric: string; data: string; '2B'?: number; '51B'?: number; '102B'?: number; '102B SC'?: number }
> = {
  humaneval: {
    metric: 'pass@1',
    data: 'HumanEval-textprompts.jsonl (Chinese prompts)',
    '2B': 54.9,
    '51B': 66.5,
    '102B': 67.1,
    '102B SC': 77.4,
  },
  gsm8k: { metric: 'accuracy', data: 'gsm8k_Cn.txt (Chinese)', '2B': 66.6, '51B': 76.3, '102B': 76.6, '102B SC': 86.2 },
  mathqa: {
    metric: 'accuracy',
    data: 'mathqa.txt (Gaokao-Math-QA)',
    '2B': 29.3,
    '51B': 37.6,
    '102B': 38.7,
    '102B SC': 45.5,
  },
  mathcloze: {
    metric: 'accuracy',
    data: 'mathcloze.txt (Gaokao-Math-Cloze)',
    '2B': 5.0,
    '51B': 12.7,
    '102B': 13.5,
    '102B SC': 15.2,
  },
  truthfulqa: {
    metric: 'mc1',
    data: 'TruthfulQA_CN.json (Chinese MC1, unshuffled: the answer is always A)',
    '102B': 58,
  },
};

/** The `details.paper` block of a YUAN-protocol result: the paper's numbers beside ours, and what ours is. */
export function paperComparison(
  task: string,
  metrics: Record<string, number>,
  note: string,
  scMetric?: string,
): Record<string, unknown> | undefined {
  const p = PAPER_RESULTS[task];
  if (!p) return undefined;
  const ours: Record<string, number> = { [p.metric]: metrics[p.metric] ?? Number.NaN };
  if (scMetric && metrics[scMetric] !== undefined) ours[scMetric] = metrics[scMetric]!;
  const { metric, data, ...reported } = p;
  return { protocol: 'yuan', metric, paper_data: data, reported, ours, note };
}
