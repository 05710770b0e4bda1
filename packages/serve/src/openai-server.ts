import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { defaultChatPrompt, type ServedCompletion, type ServedLogprob, type ServedModel } from './served-model.js';
import {
  DEFAULT_REQUEST_LIMITS,
  parseChatRequest,
  parseCompletionRequest,
  RequestError,
  type ParsedRequest,
  type RequestLimits,
} from './validate.js';

/** Options of the server. Defaults: DEFAULT_REQUEST_LIMITS, at most 64 requests in flight, no request log. */
export interface OpenAIServerOptions {
  limits?: Partial<RequestLimits>;
  maxQueue?: number;
  /** Called with one line per request (method, path, status, milliseconds). */
  log?: (line: string) => void;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      reject(new RequestError(413, `the request body is larger than ${maxBytes} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        reject(new RequestError(413, `the request body is larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', (e) => reject(new RequestError(400, `cannot read the request: ${e.message}`)));
    req.on('end', () => {
      if (failed) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        reject(new RequestError(400, `the body is not valid JSON (${(e as Error).message})`));
        return;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        reject(new RequestError(400, 'the body must be a JSON object'));
      else resolve(parsed as Record<string, unknown>);
    });
  });
}

/** Counts requests in flight, refusing work beyond `max` of them (503). */
class Admission {
  private active = 0;
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) throw new RequestError(503, 'the server is busy; retry later', null, 'server_busy');
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
    }
  }
}

/** An OpenAI completions `logprobs` object for a run of tokens. */
function completionLogprobs(entries: ServedLogprob[]): Record<string, unknown> {
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => (e.top ? Object.fromEntries([...e.top].reverse()) : null)),
    text_offset: entries.map((e) => e.offset),
  };
}

const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

/** An OpenAI chat `logprobs` object (`content`: one entry per generated token). */
function chatLogprobs(entries: ServedLogprob[]): Record<string, unknown> {
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: utf8(e.token),
      top_logprobs: (e.top ?? []).map(([token, logprob]) => ({ token, logprob, bytes: utf8(token) })),
    })),
  };
}

/**
 * An OpenAI-compatible HTTP server over a served model: `GET /v1/models`, `POST /v1/completions` (prompt as a string,
 * strings, token ids or arrays of token ids; `n`, `stop`, `logprobs`, `echo`) and `POST /v1/chat/completions`
 * (`logprobs`/`top_logprobs`), both with `stream: true` (server-sent events ending in `data: [DONE]`, with
 * `stream_options.include_usage`). Every prompt is checked by the model before the answer starts, so a request the
 * model cannot serve is a 4xx JSON error naming the parameter, streaming or not; a failing model gets a 500 (or, once
 * a stream has started, an error event); nothing a client sends stops the server. With `model.tokenizer`, also
 * vLLM's `POST /tokenize`, `POST /detokenize` and `GET /tokenizer_info` (what lm-eval's remote tokenizer uses). Requests run concurrently (a
 * batching model generates them together); beyond `maxQueue` in flight the server answers 503.
 * Returns the unstarted server: call `listen(port, host)`.
 */
export function createOpenAIServer(model: ServedModel, options: OpenAIServerOptions = {}): http.Server {
  const limits: RequestLimits = {
    ...DEFAULT_REQUEST_LIMITS,
    ...(model.maxNewTokens ? { maxNewTokens: model.maxNewTokens } : {}),
    ...options.limits,
  };
  const admission = new Admission(options.maxQueue ?? 64);
  const created = Math.floor(Date.now() / 1000);
  const format = model.formatChat?.bind(model) ?? defaultChatPrompt;

  const checkModel = (name: string | undefined) => {
    if (name !== undefined && name !== model.modelName) {
      throw new RequestError(
        404,
        `model "${name}" does not exist here; this server serves "${model.modelName}"`,
        'model',
        'model_not_found',
      );
    }
  };

  const prepareAll = (parsed: ParsedRequest, chat: boolean): unknown[] =>
    parsed.requests.map((r) => {
      try {
        return model.prepare(r, chat ? 'messages' : 'prompt');
      } catch (e) {
        const param = (e as { param?: unknown })?.param;
        if (typeof param === 'string') throw new RequestError(400, (e as Error).message, param);
        throw e;
      }
    });

  const handle = async (req: IncomingMessage, res: ServerResponse, abort: AbortSignal): Promise<number> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname.replace(/\/+$/, '');
    if (route === '/v1/models' || route === `/v1/models/${encodeURIComponent(model.modelName)}`) {
      if (req.method !== 'GET') throw new RequestError(405, `${req.method} is not allowed on ${route}; use GET`);
      const entry = { id: model.modelName, object: 'model', created, owned_by: 'yuan' };
      sendJson(res, 200, route === '/v1/models' ? { object: 'list', data: [entry] } : entry);
      return 200;
    }
    const tok = model.tokenizer;
    if (tok && (route === '/tokenizer_info' || route === '/tokenize' || route === '/detokenize')) {
      if (route === '/tokenizer_info') {
        if (req.method !== 'GET') throw new RequestError(405, `${req.method} is not allowed on ${route}; use GET`);
        sendJson(res, 200, {
          eos_token: tok.eosToken,
          bos_token: null,
          pad_token: null,
          model_max_length: tok.contextLength,
          vocab_size: tok.vocabSize,
        });
        return 200;
      }
      if (req.method !== 'POST') throw new RequestError(405, `${req.method} is not allowed on ${route}; use POST`);
      const body = await readBody(req, limits.maxBodyBytes);
      if (route === '/tokenize') {
        if (typeof body.prompt !== 'string') throw new RequestError(400, 'prompt must be a string', 'prompt');
        const tokens = tok.encode(body.prompt);
        sendJson(res, 200, { tokens, count: tokens.length, max_model_len: tok.contextLength });
        return 200;
      }
      const ids = body.tokens;
      if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0 && i < tok.vocabSize)) {
        throw new RequestError(400, `tokens must be an array of token ids below ${tok.vocabSize}`, 'tokens');
      }
      sendJson(res, 200, { prompt: tok.decode(ids as number[]) });
      return 200;
    }
    const chat = route === '/v1/chat/completions';
    if (!chat && route !== '/v1/completions')
      throw new RequestError(
        404,
        `no route ${route} (try /v1/models, /v1/completions, /v1/chat/completions)`,
        null,
        'not_found',
      );
    if (req.method !== 'POST') throw new RequestError(405, `${req.method} is not allowed on ${route}; use POST`);
    const body = await readBody(req, limits.maxBodyBytes);
    const parsed = chat ? parseChatRequest(body, limits, format) : parseCompletionRequest(body, limits);
    checkModel(parsed.model);
    return admission.run(async () => {
      const prepared = prepareAll(parsed, chat); // content errors are 400s, decided before any answer is sent
      const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
      const head = { id, created: Math.floor(Date.now() / 1000), model: model.modelName };
      const n = parsed.requests[0]!.n;
      if (parsed.stream) {
        await stream(res, prepared, parsed, chat, n, head, abort);
        return 200;
      }
      const results = await Promise.all(prepared.map((p) => model.generate(p, undefined, abort)));
      const choices = results.flatMap((completions, p) =>
        completions.map((c, i) => {
          const index = p * n + i;
          if (chat) {
            return {
              index,
              message: { role: 'assistant', content: c.text },
              finish_reason: c.finishReason,
              logprobs: c.logprobs && parsed.chatLogprobs ? chatLogprobs(c.logprobs) : null,
            };
          }
          return {
            index,
            text: c.text,
            finish_reason: c.finishReason,
            logprobs: c.logprobs ? completionLogprobs(c.logprobs) : null,
          };
        }),
      );
      const usage = usageOf(results);
      sendJson(res, 200, {
        ...head,
        object: chat ? 'chat.completion' : 'text_completion',
        choices,
        ...(usage ? { usage } : {}),
      });
      return 200;
    });
  };

  const stream = async (
    res: ServerResponse,
    prepared: unknown[],
    parsed: ParsedRequest,
    chat: boolean,
    n: number,
    head: Record<string, unknown>,
    abort: AbortSignal,
  ) => {
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const usageField = parsed.includeUsage ? { usage: null } : {};
    const write = (payload: Record<string, unknown>) => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(payload)}\n\n`);
    };
    const send = (choice: Record<string, unknown>) => write({ ...head, object, choices: [choice], ...usageField });
    const piece = (index: number, text: string, lp: ServedLogprob[]) => {
      if (chat)
        send({
          index,
          delta: { content: text },
          finish_reason: null,
          logprobs: parsed.chatLogprobs && lp.length ? chatLogprobs(lp) : null,
        });
      else
        send({
          index,
          text,
          finish_reason: null,
          logprobs: parsed.requests[0]!.logprobs !== undefined ? completionLogprobs(lp) : null,
        });
    };
    const finish = (index: number, reason: string) =>
      send(
        chat
          ? { index, delta: {}, finish_reason: reason, logprobs: null }
          : { index, text: '', finish_reason: reason, logprobs: null },
      );
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    try {
      if (chat)
        for (let i = 0; i < prepared.length * n; i++)
          send({ index: i, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null });
      const results = await Promise.all(
        prepared.map(async (p, k) => {
          const done = await model.generate(
            p,
            (i, delta, lp) => (delta || lp.length ? piece(k * n + i, delta, lp) : undefined),
            abort,
          );
          done.forEach((c, i) => finish(k * n + i, c.finishReason));
          return done;
        }),
      );
      const usage = usageOf(results);
      if (parsed.includeUsage) write({ ...head, object, choices: [], usage: usage ?? null });
    } catch (e) {
      write({
        error: { message: `generation failed: ${(e as Error).message}`, type: 'server_error', param: null, code: null },
      });
    }
    if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
  };

  const server = http.createServer((req, res) => {
    const started = performance.now();
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    handle(req, res, controller.signal)
      .catch((e: unknown) => {
        if (e instanceof RequestError) {
          sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: null } });
          return e.status;
        }
        sendJson(res, 500, {
          error: {
            message: `the model failed: ${(e as Error)?.message ?? String(e)}`,
            type: 'server_error',
            param: null,
            code: null,
          },
        });
        return 500;
      })
      .then((status) =>
        options.log?.(`${req.method} ${req.url} ${status} ${(performance.now() - started).toFixed(0)} ms`),
      )
      .catch(() => undefined);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

function usageOf(results: ServedCompletion[][]): Record<string, number> | undefined {
  const all = results.flat();
  if (all.some((c) => c.completionTokens === undefined) || results.some((r) => r[0]?.promptTokens === undefined))
    return undefined;
  const prompt = results.reduce((a, r) => a + r[0]!.promptTokens!, 0);
  const completion = all.reduce((a, c) => a + c.completionTokens!, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
