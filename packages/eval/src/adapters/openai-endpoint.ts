import { ConfigError, YuanError, type GenerationRequest, type ModelAdapter, type ModelAdapterPlugin } from '@yuan/core';
import { echoLogLikelihood } from './logprobs.js';
import { Semaphore } from './semaphore.js';

/**
 * Options of the OpenAI-compatible endpoint adapter. Defaults: the `/v1/completions` API (`chat` false), key from
 * OPENAI_API_KEY (none sent when unset), 4 requests in flight, 3 retries with exponential backoff from 500 ms, 120 s
 * per request.
 */
export interface EndpointOptions {
  /** Base URL, e.g. `http://127.0.0.1:8000` or `https://api.example.com/v1`. */
  endpoint: string;
  /** The `model` field sent with every request. */
  model: string;
  chat: boolean;
  apiKeyEnv: string;
  concurrency: number;
  retries: number;
  backoffMs: number;
  timeoutMs: number;
  /** Offer `logLikelihood` through echo + logprobs requests (the server must support them); default false. */
  logprobs: boolean;
}

const DEFAULTS: EndpointOptions = {
  endpoint: '',
  model: '',
  chat: false,
  apiKeyEnv: 'OPENAI_API_KEY',
  concurrency: 4,
  retries: 3,
  backoffMs: 500,
  timeoutMs: 120_000,
  logprobs: false,
};

/** Whether an HTTP status is worth retrying (rate limit, timeout, server error). */
function retryable(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

function baseUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConfigError(`--endpoint "${endpoint}" is not a URL (expected e.g. http://127.0.0.1:8000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`--endpoint "${endpoint}": expected http:// or https://`);
  const trimmed = url.href.replace(/\/+$/, '');
  return /\/v1$/.test(trimmed) ? trimmed : `${trimmed}/v1`;
}

function validate(options: Record<string, unknown>): EndpointOptions {
  const o = { ...DEFAULTS, ...options } as EndpointOptions;
  baseUrl(o.endpoint);
  if (typeof o.model !== 'string' || o.model === '')
    throw new ConfigError('an endpoint needs a model name (--api-model NAME)');
  for (const key of ['concurrency', 'retries', 'backoffMs', 'timeoutMs'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < (key === 'retries' ? 0 : 1))
      throw new ConfigError(`endpoint option ${key} = ${JSON.stringify(o[key])}: expected a positive integer`);
  }
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A model behind an OpenAI-compatible HTTP API, with bounded concurrency, retries with backoff and a request timeout. */
export class OpenAIEndpointAdapter implements ModelAdapter {
  /** `endpoint-model@url`. */
  readonly name: string;
  private readonly url: string;
  private readonly semaphore: Semaphore;
  private readonly options: EndpointOptions;

  constructor(options: Partial<EndpointOptions> & Pick<EndpointOptions, 'endpoint' | 'model'>) {
    this.options = validate(options);
    this.url = baseUrl(this.options.endpoint);
    this.name = `${this.options.model}@${this.url}`;
    this.semaphore = new Semaphore(this.options.concurrency);
    if (this.options.logprobs && !this.options.chat) {
      const key = process.env[this.options.apiKeyEnv];
      const target = {
        url: this.url,
        model: this.options.model,
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        timeoutMs: this.options.timeoutMs,
        retries: this.options.retries,
      };
      this.logLikelihood = (context, continuation) =>
        this.semaphore.use(() => echoLogLikelihood(target, context, continuation));
    }
  }

  /** Present only with `logprobs: true` (completions API): sum of the continuation's token log-probabilities. */
  logLikelihood?: (context: string, continuation: string) => Promise<number>;

  /** Sends one completion request per needed batch (servers may return fewer than `n` choices) and returns the texts. */
  async generate(req: GenerationRequest): Promise<string[]> {
    const n = req.n ?? 1;
    const texts: string[] = [];
    while (texts.length < n) {
      const got = await this.semaphore.use(() => this.request(req, n - texts.length));
      if (got.length === 0) throw new YuanError('endpoint', `${this.name} returned no choices`);
      texts.push(...got.slice(0, n - texts.length));
    }
    return texts;
  }

  private body(req: GenerationRequest, n: number): Record<string, unknown> {
    const body: Record<string, unknown> = {
      model: this.options.model,
      max_tokens: req.maxNewTokens,
      temperature: req.temperature ?? 0,
      n,
    };
    if (req.topP !== undefined) body.top_p = req.topP;
    if (req.seed !== undefined) body.seed = req.seed;
    if (req.stop?.length) body.stop = req.stop.slice(0, 4);
    if (this.options.chat) body.messages = [{ role: 'user', content: req.prompt }];
    else body.prompt = req.prompt;
    return body;
  }

  private async request(req: GenerationRequest, n: number): Promise<string[]> {
    const { retries, backoffMs, timeoutMs, apiKeyEnv, chat } = this.options;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const key = process.env[apiKeyEnv];
    if (key) headers.authorization = `Bearer ${key}`;
    const target = `${this.url}/${chat ? 'chat/completions' : 'completions'}`;
    const payload = JSON.stringify(this.body(req, n));
    let last = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
      let res: Response;
      try {
        res = await fetch(target, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
      } catch (e) {
        const err = e as Error;
        last =
          err.name === 'TimeoutError'
            ? `no answer within ${timeoutMs} ms`
            : `${err.message}${(err.cause as Error | undefined)?.message ? ` (${(err.cause as Error).message})` : ''}`;
        continue;
      }
      const text = await res.text().catch(() => '');
      if (!res.ok) {
        const detail = (() => {
          try {
            return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text.slice(0, 200);
          } catch {
            return text.slice(0, 200);
          }
        })();
        last = `HTTP ${res.status}: ${detail}`;
        if (retryable(res.status)) {
          const after = Number(res.headers.get('retry-after'));
          if (Number.isFinite(after) && after > 0) await sleep(Math.min(after, 30) * 1000);
          continue;
        }
        throw new YuanError('endpoint', `${target}: ${last}`);
      }
      return parseChoices(text, chat, target);
    }
    throw new YuanError('endpoint', `${target}: failed after ${retries + 1} attempts (last: ${last})`);
  }
}

function parseChoices(text: string, chat: boolean, target: string): string[] {
  let parsed: { choices?: { index?: number; text?: unknown; message?: { content?: unknown } }[] };
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new YuanError('endpoint', `${target}: the answer is not JSON: ${text.slice(0, 120)}`);
  }
  if (!Array.isArray(parsed.choices)) throw new YuanError('endpoint', `${target}: the answer has no "choices" array`);
  return [...parsed.choices]
    .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
    .map((c) => {
      const value = chat ? c.message?.content : c.text;
      if (typeof value !== 'string')
        throw new YuanError('endpoint', `${target}: a choice has no ${chat ? 'message.content' : 'text'} string`);
      return value;
    });
}

/** The `openai` model-adapter plugin: `{endpoint, model, chat?, apiKeyEnv?, concurrency?, retries?, timeoutMs?}`. */
export const openAIEndpointPlugin: ModelAdapterPlugin<EndpointOptions> = {
  kind: 'model-adapter',
  name: 'openai',
  description: 'a model behind an OpenAI-compatible endpoint',
  defaults: DEFAULTS,
  validate,
  open: async (options) => new OpenAIEndpointAdapter(options),
};
