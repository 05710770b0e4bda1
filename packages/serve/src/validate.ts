import type { ChatMessage, ServedRequest } from './served-model.js';

/** A request the server refuses, with the HTTP status, the message and the offending parameter. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = 'invalid_request_error',
  ) {
    super(message);
  }
}

/**
 * Limits on requests. Defaults: 1 MiB bodies, 100,000-character prompts, 64 prompts per request, n <= 8, 4 stop
 * strings of <= 64 characters, max_tokens <= 2048 (replaced by the served model's own when it has one).
 */
export interface RequestLimits {
  maxBodyBytes: number;
  maxPromptChars: number;
  maxPrompts: number;
  maxN: number;
  maxStop: number;
  maxStopChars: number;
  maxNewTokens: number;
}

/** Default request limits (maxNewTokens is replaced by the served model's own when it has one). */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxBodyBytes: 1 << 20,
  maxPromptChars: 100_000,
  maxPrompts: 64,
  maxN: 8,
  maxStop: 4,
  maxStopChars: 64,
  maxNewTokens: 2048,
};

/** A validated request: one ServedRequest per prompt, plus what shapes the answer. */
export interface ParsedRequest {
  requests: ServedRequest[];
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the usage and no choices. */
  includeUsage: boolean;
  model: string | undefined;
  /** Chat: `logprobs: true` asks for per-token logprobs in the chat format. */
  chatLogprobs: boolean;
}

const given = (v: unknown) => v !== undefined && v !== null;

function num(body: Record<string, unknown>, key: string, def: number, min: number, max: number, int = false): number {
  const v = body[key];
  if (!given(v)) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < min || v > max) {
    throw new RequestError(
      400,
      `${key} must be ${int ? 'an integer' : 'a number'} between ${min} and ${max} (got ${JSON.stringify(v)})`,
      key,
    );
  }
  return v;
}

function refuseUnsupported(body: Record<string, unknown>): void {
  for (const key of ['presence_penalty', 'frequency_penalty']) {
    if (given(body[key]) && body[key] !== 0)
      throw new RequestError(400, `${key} is not supported by this server (only 0)`, key);
  }
  if (
    given(body.logit_bias) &&
    (typeof body.logit_bias !== 'object' || Object.keys(body.logit_bias as object).length > 0)
  ) {
    throw new RequestError(400, 'logit_bias is not supported by this server', 'logit_bias');
  }
  if (given(body.suffix) && body.suffix !== '')
    throw new RequestError(400, 'suffix is not supported by this server', 'suffix');
  if (given(body.tools) && Array.isArray(body.tools) && body.tools.length > 0)
    throw new RequestError(400, 'tools are not supported by this server', 'tools');
  if (given(body.response_format) && (body.response_format as { type?: unknown }).type !== 'text') {
    throw new RequestError(400, 'response_format other than text is not supported by this server', 'response_format');
  }
}

function common(
  body: Record<string, unknown>,
  limits: RequestLimits,
  chat: boolean,
): Omit<ServedRequest, 'prompt'> & { stream: boolean; includeUsage: boolean } {
  if (given(body.model) && typeof body.model !== 'string')
    throw new RequestError(400, 'model must be a string', 'model');
  refuseUnsupported(body);
  const maxKey = given(body.max_completion_tokens) ? 'max_completion_tokens' : 'max_tokens';
  // OpenAI: completions default to 16 new tokens; chat to whatever room the context leaves
  const maxNewTokens = given(body[maxKey])
    ? num(body, maxKey, 16, 0, limits.maxNewTokens, true)
    : chat
      ? undefined
      : Math.min(16, limits.maxNewTokens);
  const temperature = num(body, 'temperature', 1, 0, 2);
  const topP = num(body, 'top_p', 1, Number.MIN_VALUE, 1);
  const topK = num(body, 'top_k', 0, -1, 1 << 30, true);
  const n = num(body, 'n', 1, 1, limits.maxN, true);
  if (given(body.best_of) && body.best_of !== n)
    throw new RequestError(400, 'best_of other than n is not supported by this server', 'best_of');
  const seedRaw = body.seed;
  if (given(seedRaw) && !Number.isSafeInteger(seedRaw)) throw new RequestError(400, 'seed must be an integer', 'seed');
  let stop: string[] = [];
  if (typeof body.stop === 'string') stop = [body.stop];
  else if (Array.isArray(body.stop)) stop = body.stop as string[];
  else if (given(body.stop)) throw new RequestError(400, 'stop must be a string or an array of strings', 'stop');
  if (
    stop.length > limits.maxStop ||
    stop.some((s) => typeof s !== 'string' || s === '' || s.length > limits.maxStopChars)
  ) {
    throw new RequestError(
      400,
      `stop must hold at most ${limits.maxStop} non-empty strings of at most ${limits.maxStopChars} characters`,
      'stop',
    );
  }
  if (given(body.stream) && typeof body.stream !== 'boolean')
    throw new RequestError(400, 'stream must be a boolean', 'stream');
  const so = body.stream_options;
  if (given(so) && (typeof so !== 'object' || Array.isArray(so)))
    throw new RequestError(400, 'stream_options must be an object', 'stream_options');
  if (given(so) && body.stream !== true)
    throw new RequestError(400, 'stream_options is only allowed when stream is true', 'stream_options');
  const includeUsage = (so as { include_usage?: unknown } | undefined)?.include_usage;
  if (given(includeUsage) && typeof includeUsage !== 'boolean')
    throw new RequestError(400, 'stream_options.include_usage must be a boolean', 'stream_options');
  let logprobs: number | undefined;
  if (chat) {
    if (given(body.logprobs) && typeof body.logprobs !== 'boolean')
      throw new RequestError(400, 'logprobs must be a boolean', 'logprobs');
    const top = num(body, 'top_logprobs', 0, 0, 20, true);
    if (given(body.top_logprobs) && body.logprobs !== true)
      throw new RequestError(400, 'top_logprobs needs logprobs: true', 'top_logprobs');
    if (body.logprobs === true) logprobs = top;
  } else if (given(body.logprobs) && body.logprobs !== false) {
    logprobs = num(body, 'logprobs', 0, 0, 20, true);
  }
  if (given(body.ignore_eos) && typeof body.ignore_eos !== 'boolean')
    throw new RequestError(400, 'ignore_eos must be a boolean', 'ignore_eos');
  if (given(body.echo) && typeof body.echo !== 'boolean') throw new RequestError(400, 'echo must be a boolean', 'echo');
  if (body.echo === true && body.stream === true)
    throw new RequestError(400, 'echo cannot be combined with stream on this server', 'echo');
  return {
    maxNewTokens,
    temperature,
    topP,
    ...(topK > 0 ? { topK } : {}),
    n,
    stop,
    ...(typeof seedRaw === 'number' ? { seed: seedRaw } : {}),
    ...(logprobs !== undefined ? { logprobs } : {}),
    ...(body.echo === true ? { echo: true } : {}),
    ...(body.ignore_eos === true ? { ignoreEod: true } : {}),
    stream: body.stream === true,
    includeUsage: includeUsage === true,
  };
}

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');

/**
 * The prompts of a `/v1/completions` body: a string, an array of strings, an array of token ids, or an array of
 * arrays of token ids (OpenAI's four forms). Token ids are checked against the vocabulary by the served model.
 */
function prompts(raw: unknown, limits: RequestLimits): (string | number[])[] {
  const bad = () =>
    new RequestError(
      400,
      'prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids',
      'prompt',
    );
  let list: (string | number[])[];
  if (typeof raw === 'string') list = [raw];
  else if (isIds(raw)) list = [raw];
  else if (Array.isArray(raw) && raw.length > 0 && raw.every((p) => typeof p === 'string')) list = raw as string[];
  else if (Array.isArray(raw) && raw.length > 0 && raw.every(isIds)) list = raw as number[][];
  else throw bad();
  if (list.length > limits.maxPrompts)
    throw new RequestError(400, `at most ${limits.maxPrompts} prompts per request (got ${list.length})`, 'prompt');
  for (const p of list) {
    if (typeof p === 'string' && p.length > limits.maxPromptChars)
      throw new RequestError(
        400,
        `the prompt has ${p.length} characters; the limit is ${limits.maxPromptChars}`,
        'prompt',
      );
    if (typeof p !== 'string' && p.some((id) => !Number.isSafeInteger(id) || id < 0))
      throw new RequestError(400, 'token ids in prompt must be non-negative integers', 'prompt');
  }
  return list;
}

/** Validates a `/v1/completions` body. */
export function parseCompletionRequest(body: Record<string, unknown>, limits: RequestLimits): ParsedRequest {
  const list = prompts(body.prompt, limits);
  const { stream, includeUsage, ...gen } = common(body, limits, false);
  return {
    requests: list.map((prompt) => ({ ...gen, prompt })),
    stream,
    includeUsage,
    model: body.model as string | undefined,
    chatLogprobs: false,
  };
}

/** Validates a `/v1/chat/completions` body and returns its messages (text content only). */
export function parseChatRequest(
  body: Record<string, unknown>,
  limits: RequestLimits,
  format: (m: ChatMessage[]) => string,
): ParsedRequest & { messages: ChatMessage[] } {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0)
    throw new RequestError(400, 'messages must be a non-empty array', 'messages');
  if (raw.length > 256) throw new RequestError(400, 'at most 256 messages', 'messages');
  const messages = raw.map((m: unknown, i): ChatMessage => {
    const msg = m as Record<string, unknown> | null;
    if (typeof msg !== 'object' || msg === null)
      throw new RequestError(400, `messages[${i}] must be an object`, 'messages');
    const role = msg.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      throw new RequestError(400, `messages[${i}].role must be system, user or assistant`, 'messages');
    }
    let content = msg.content;
    if (Array.isArray(content)) {
      const parts = content as Record<string, unknown>[];
      if (!parts.every((p) => p && p.type === 'text' && typeof p.text === 'string'))
        throw new RequestError(400, `messages[${i}].content: only text parts are supported`, 'messages');
      content = parts.map((p) => p.text).join('');
    }
    if (typeof content !== 'string') throw new RequestError(400, `messages[${i}].content must be a string`, 'messages');
    return { role: role === 'developer' ? 'system' : role, content };
  });
  const prompt = format(messages);
  if (prompt.length > limits.maxPromptChars)
    throw new RequestError(
      400,
      `the prompt has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`,
      'messages',
    );
  if (body.echo === true) throw new RequestError(400, 'echo is a completions parameter', 'echo');
  const { stream, includeUsage, ...gen } = common(body, limits, true);
  return {
    requests: [{ ...gen, prompt }],
    stream,
    includeUsage,
    model: body.model as string | undefined,
    chatLogprobs: gen.logprobs !== undefined,
    messages,
  };
}
