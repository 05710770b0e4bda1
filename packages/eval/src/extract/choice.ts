const CUE =
  /(?:答案(?:是|为|应该是|选)?\s*[:：]?|故选|应选|选择|answer is|answer:|correct (?:answer|option|choice) is)\s*[:：]?\s*/gi;
const RUN = /^[\s(（]*([A-J](?:[\s,，、和and()（）]*[A-J](?![a-z]))*)/;

function letters(run: string, allowed: string): string[] {
  return [...new Set(run.match(/[A-J]/g) ?? [])].filter((l) => allowed.includes(l)).sort();
}

/**
 * The option letters a multiple-choice answer picks, sorted: the letters right after the last cue ("答案是", "故选",
 * "answer is", ...), else a leading letter, else the first standalone letter; [] when none of `allowed` is found.
 */
export function extractChoice(text: string, allowed = 'ABCDE'): string[] {
  const cues = [...text.matchAll(CUE)];
  for (let i = cues.length - 1; i >= 0; i--) {
    const after = text.slice(cues[i]!.index! + cues[i]![0].length);
    const m = RUN.exec(after);
    if (m) {
      const found = letters(m[1]!, allowed);
      if (found.length) return found;
    }
  }
  const lead = RUN.exec(text);
  if (lead && /^[\s(（]*[A-J](?:$|[\s.,:：)）])/.test(text)) {
    const found = letters(lead[1]!, allowed);
    if (found.length) return found;
  }
  const lone = new RegExp(`(?:^|[^A-Za-z])([${allowed}])(?![A-Za-z])`).exec(text);
  return lone ? [lone[1]!] : [];
}
