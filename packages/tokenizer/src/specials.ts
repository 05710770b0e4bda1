import { escapeRegExp } from '@yuan/core';

/** Finds added-token strings in text; at each position the longest token wins, scanning left to right. */
export class SpecialMatcher {
  private readonly re: RegExp | null;

  constructor(private readonly ids: ReadonlyMap<string, number>) {
    const tokens = [...ids.keys()].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
    this.re = tokens.length > 0 ? new RegExp(tokens.map(escapeRegExp).join('|'), 'g') : null;
  }

  /** Calls `onText` for each non-empty stretch between tokens and `onToken` for each token's id, in order. */
  split(text: string, onText: (part: string) => void, onToken: (id: number) => void): void {
    if (this.re === null) {
      if (text.length > 0) onText(text);
      return;
    }
    const re = this.re;
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > last) onText(text.slice(last, m.index));
      onToken(this.ids.get(m[0]) as number);
      last = m.index + m[0].length;
    }
    if (last < text.length) onText(text.slice(last));
  }
}
