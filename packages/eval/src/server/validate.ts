import type { GenerationRequest } from '@yuan/core';
import type { ChatMessage } from './served-model.js';

/** A request the server refuses, with the HTTP status, the message and the offending parameter. */
export class RequestError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly type = 'invalid_request_error') {
    super(message);
  }
}

/** Limits on requests. Defaults: 1 MiB bodies, 100,000-character prompts, n <= 8, 4 stop strings of <= 64 characters. */
export interface RequestLimits {
  maxBodyBytes: number;
  maxPromptChars: number;
  maxN: number;
  maxStop: number;
  maxStopChars: number;
  maxNewTokens: number;
}

/** Default request limits (maxNewTokens is replaced by the served model's own when it has one). */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxBodyBytes: 1 << 20, maxPromptChars: 100_000, maxN: 8, maxStop: 4, maxStopChars: 64, maxNewTokens: 2048 };

/** A validated generation request plus the streaming flag. */
export interface ParsedRequest {
  gen: GenerationRequest;
  stream: boolean;
  model: string | undefined;
}

function num(body: Record<string, unknown>, key: string, def: number, min: number, max: number, int = false): number {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < min || v > max) {
    throw new RequestError(400, `${key} must be ${int ? 'an integer' : 'a number'} between ${min} and ${max} (got ${JSON.stringify(v)})`, key);
  }
  return v;
}

function common(body: Record<string, unknown>, limits: RequestLimits, prompt: string): ParsedRequest {
  if (body.model !== undefined && typeof body.model !== 'string') throw new RequestError(400, 'model must be a string', 'model');
  if (prompt.length > limits.maxPromptChars) throw new RequestError(400, `the prompt has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`, 'prompt');
  const maxKey = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxNewTokens = num(body, maxKey, 16, 0, limits.maxNewTokens, true);
  const temperature = num(body, 'temperature', 1, 0, 2);
  const topP = num(body, 'top_p', 1, Number.MIN_VALUE, 1);
  const n = num(body, 'n', 1, 1, limits.maxN, true);
  const seedRaw = body.seed;
  if (seedRaw !== undefined && seedRaw !== null && !Number.isSafeInteger(seedRaw)) throw new RequestError(400, 'seed must be an integer', 'seed');
  let stop: string[] = [];
  if (typeof body.stop === 'string') stop = [body.stop];
  else if (Array.isArray(body.stop)) stop = body.stop as string[];
  else if (body.stop !== undefined && body.stop !== null) throw new RequestError(400, 'stop must be a string or an array of strings', 'stop');
  if (stop.length > limits.maxStop || stop.some((s) => typeof s !== 'string' || s === '' || s.length > limits.maxStopChars)) {
    throw new RequestError(400, `stop must hold at most ${limits.maxStop} non-empty strings of at most ${limits.maxStopChars} characters`, 'stop');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw new RequestError(400, 'stream must be a boolean', 'stream');
  if (body.echo === true) throw new RequestError(400, 'echo is not supported by this server', 'echo');
  if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) throw new RequestError(400, 'logprobs are not supported by this server', 'logprobs');
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw new RequestError(400, 'best_of is not supported by this server', 'best_of');
  const gen: GenerationRequest = { prompt, maxNewTokens, temperature, topP, n, ...(stop.length ? { stop } : {}) };
  if (typeof seedRaw === 'number') gen.seed = seedRaw;
  return { gen, stream: body.stream === true, model: body.model as string | undefined };
}

/** Validates a `/v1/completions` body (a single string prompt, or an array holding one). */
export function parseCompletionRequest(body: Record<string, unknown>, limits: RequestLimits): ParsedRequest {
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1) prompt = prompt[0];
  if (typeof prompt !== 'string') throw new RequestError(400, 'prompt must be a string (or an array holding exactly one string)', 'prompt');
  return common(body, limits, prompt);
}

/** Validates a `/v1/chat/completions` body and returns its messages (text content only). */
export function parseChatRequest(body: Record<string, unknown>, limits: RequestLimits, format: (m: ChatMessage[]) => string): ParsedRequest & { messages: ChatMessage[] } {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) throw new RequestError(400, 'messages must be a non-empty array', 'messages');
  if (raw.length > 256) throw new RequestError(400, 'at most 256 messages', 'messages');
  const messages = raw.map((m: unknown, i): ChatMessage => {
    const msg = m as Record<string, unknown> | null;
    if (typeof msg !== 'object' || msg === null) throw new RequestError(400, `messages[${i}] must be an object`, 'messages');
    const role = msg.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      throw new RequestError(400, `messages[${i}].role must be system, user or assistant`, 'messages');
    }
    let content = msg.content;
    if (Array.isArray(content)) {
      const parts = content as Record<string, unknown>[];
      if (!parts.every((p) => p && p.type === 'text' && typeof p.text === 'string')) throw new RequestError(400, `messages[${i}].content: only text parts are supported`, 'messages');
      content = parts.map((p) => p.text).join('');
    }
    if (typeof content !== 'string') throw new RequestError(400, `messages[${i}].content must be a string`, 'messages');
    return { role: role === 'developer' ? 'system' : role, content };
  });
  return { ...common(body, limits, format(messages)), messages };
}
