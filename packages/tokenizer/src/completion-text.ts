import type { Tokenizer } from '@yuan/core';

/** Length of the longest common prefix of two strings (UTF-16 code units). */
function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The earliest occurrence of any of `stops` in `text` at or after `from`, or -1. */
export function firstStop(text: string, stops: readonly string[], from = 0): number {
  let at = -1;
  for (const s of stops) {
    const i = s ? text.indexOf(s, from) : -1;
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `stops` (text that may yet become a stop). */
function stopPrefixTail(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/** What one generated token added to a completion's text. */
export interface TextStep {
  /** Text now final: never retracted, never an incomplete character (may be ''). */
  delta: string;
  /** True when a stop string appeared: the completion ends here, cut before the stop string. */
  stopped: boolean;
}

/**
 * The text of one completion, built token by token so that it is exactly `decode(prompt ++ generated)` minus
 * `decode(prompt)` (the new tokens decoded in context: a SentencePiece `▁` keeps its space, byte-fallback pieces join
 * into their character), cut before the first occurrence of any stop string.
 *
 * While streaming, text is held back until it is final: trailing U+FFFD (bytes of a character not yet complete) and
 * a trailing stretch that could still grow into a stop string. When the prompt's decoding ends inside a character
 * (token-id prompts), the completion starts where the two decodings first differ.
 *
 * Cost: one `decode` of prompt + generated per token (linear in the sequence; negligible beside a model step).
 */
export class CompletionText {
  private readonly ids: number[];
  private readonly promptText: string;
  private base: number;
  private full = '';
  private sent = 0;
  private cut = -1;
  private finished = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    prompt: readonly number[],
    private readonly stops: readonly string[] = [],
  ) {
    this.ids = [...prompt];
    this.promptText = tokenizer.decode(prompt);
    this.base = this.promptText.length;
  }

  /** Number of generated tokens pushed so far. */
  tokens = 0;

  /** The completion text: everything so far (final only after `finish`, or once a stop string was seen). */
  get text(): string {
    const t = this.completion();
    return this.cut >= 0 ? t.slice(0, this.cut) : t;
  }

  /** The prompt's text as it stands before the completion (for echo). */
  get promptPart(): string {
    return this.promptText.slice(0, this.base);
  }

  /** Characters of completion text emitted so far. */
  get sentLength(): number {
    return this.sent;
  }

  /** Whether a stop string ended the text. */
  get stopped(): boolean {
    return this.cut >= 0;
  }

  private completion(): string {
    return this.full.slice(this.base);
  }

  /** Adds one generated token; returns the text that became final and whether a stop string ended the completion. */
  push(id: number): TextStep {
    if (this.cut >= 0 || this.finished) throw new Error('CompletionText: push after the completion ended');
    this.ids.push(id);
    this.tokens++;
    this.full = this.tokenizer.decode(this.ids);
    if (!this.full.startsWith(this.promptText))
      this.base = Math.min(this.base, commonPrefix(this.full, this.promptText));
    const c = this.completion();
    let stable = c.length;
    while (stable > this.sent && c.charCodeAt(stable - 1) === 0xfffd) stable--;
    return this.advance(c, stable);
  }

  /** Ends the completion (max tokens, end of document): returns the held-back text, cut at a stop string if one is in it. */
  finish(): TextStep {
    if (this.cut >= 0 || this.finished) return { delta: '', stopped: this.cut >= 0 };
    this.finished = true;
    const c = this.completion();
    return this.advance(c, c.length, true);
  }

  private advance(c: string, stable: number, final = false): TextStep {
    const longest = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
    const at = firstStop(c.slice(0, stable), this.stops, Math.max(0, this.sent - longest + 1));
    if (at >= 0) {
      this.cut = at;
      const delta = c.slice(this.sent, at);
      this.sent = Math.max(this.sent, at);
      return { delta, stopped: true };
    }
    const end = final ? stable : stable - stopPrefixTail(c.slice(0, stable), this.stops);
    const delta = end > this.sent ? c.slice(this.sent, end) : '';
    this.sent = Math.max(this.sent, end);
    return { delta, stopped: false };
  }
}
