/** The most frequent non-null answer; ties go to the answer that appeared first. Null when every answer is null. */
export function majorityVote(answers: ReadonlyArray<string | null>): string | null {
  const counts = new Map<string, number>();
  for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
  const top = Math.max(0, ...counts.values());
  return answers.find((a): a is string => a !== null && counts.get(a) === top) ?? null;
}

/** maj@k with take-first-k: the majority vote over the first k sampled answers (the paper's self-consistency). */
export function majorityAtK(answers: ReadonlyArray<string | null>, k: number): string | null {
  return majorityVote(answers.slice(0, k));
}
