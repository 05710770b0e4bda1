import { YuanError } from '@yuan/core';

/** Where and how an echo-logprobs request is sent. */
export interface LogprobTarget {
  url: string;
  model: string;
  headers: Record<string, string>;
  timeoutMs: number;
  retries: number;
}

/**
 * Sum of the log-probabilities of `continuation` after `context` from an OpenAI-compatible `/v1/completions` endpoint:
 * one request with `echo: true, logprobs: 1, max_tokens: 0` (as lm-eval's `local-completions`), summing
 * `token_logprobs` of the tokens whose `text_offset` lies at or after the end of the context. Throws a YuanError
 * (`endpoint`) naming what was missing when the server refuses echo or returns no logprobs.
 */
export async function echoLogLikelihood(target: LogprobTarget, context: string, continuation: string): Promise<number> {
  const payload = JSON.stringify({
    model: target.model,
    prompt: context + continuation,
    max_tokens: 0,
    echo: true,
    logprobs: 1,
    temperature: 0,
  });
  let last = '';
  for (let attempt = 0; attempt <= target.retries; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${target.url}/completions`, {
        method: 'POST',
        headers: target.headers,
        body: payload,
        signal: AbortSignal.timeout(target.timeoutMs),
      });
    } catch (e) {
      last = (e as Error).message;
      continue;
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      last = `HTTP ${res.status}: ${text.slice(0, 200)}`;
      if (res.status === 429 || res.status >= 500) continue;
      throw new YuanError('endpoint', `${target.url}/completions refused an echo+logprobs request (${last})`);
    }
    let lp: { tokens?: unknown; token_logprobs?: unknown; text_offset?: unknown } | undefined;
    try {
      lp = (JSON.parse(text) as { choices?: { logprobs?: typeof lp }[] }).choices?.[0]?.logprobs;
    } catch {
      throw new YuanError('endpoint', `${target.url}/completions: the answer is not JSON`);
    }
    const logprobs = lp?.token_logprobs;
    const offsets = lp?.text_offset;
    if (
      !Array.isArray(logprobs) ||
      !Array.isArray(offsets) ||
      logprobs.length !== offsets.length ||
      logprobs.length === 0
    ) {
      throw new YuanError(
        'endpoint',
        `${target.url}/completions returned no token logprobs with text offsets for an echo request`,
      );
    }
    let sum = 0;
    let counted = 0;
    offsets.forEach((offset, i) => {
      if (typeof offset === 'number' && offset >= context.length && typeof logprobs[i] === 'number') {
        sum += logprobs[i] as number;
        counted++;
      }
    });
    if (counted === 0)
      throw new YuanError('endpoint', `${target.url}/completions: no token of the continuation in the echoed logprobs`);
    return sum;
  }
  throw new YuanError(
    'endpoint',
    `${target.url}/completions: failed after ${target.retries + 1} attempts (last: ${last})`,
  );
}
