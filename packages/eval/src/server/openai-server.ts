import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { GenerationRequest } from '@yuan/core';
import { defaultChatPrompt, type ServedCompletion, type ServedModel } from './served-model.js';
import { DEFAULT_REQUEST_LIMITS, parseChatRequest, parseCompletionRequest, RequestError, type RequestLimits } from './validate.js';

/** Options of the server. Defaults: DEFAULT_REQUEST_LIMITS, at most 32 queued requests, no request log. */
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
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) reject(new RequestError(400, 'the body must be a JSON object'));
      else resolve(parsed as Record<string, unknown>);
    });
  });
}

/** Runs model calls one at a time, refusing work beyond `maxQueue` waiting calls. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  constructor(private readonly maxQueue: number) {}
  run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.waiting >= this.maxQueue) return Promise.reject(new RequestError(503, 'the server is busy; retry later', null, 'server_busy'));
    this.waiting++;
    const result = this.tail.then(() => {
      this.waiting--;
      return fn();
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * An OpenAI-compatible HTTP server over a served model: `GET /v1/models`, `POST /v1/completions` and
 * `POST /v1/chat/completions`, both with `stream: true` (server-sent events ending in `data: [DONE]`). Bad requests get
 * a 4xx JSON error naming the parameter; a failing model gets a 500; nothing a client sends stops the server.
 * Returns the unstarted server: call `listen(port, host)`.
 */
export function createOpenAIServer(model: ServedModel, options: OpenAIServerOptions = {}): http.Server {
  const limits: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...(model.maxNewTokens ? { maxNewTokens: model.maxNewTokens } : {}), ...options.limits };
  const queue = new Queue(options.maxQueue ?? 32);
  const created = Math.floor(Date.now() / 1000);
  const format = model.formatChat?.bind(model) ?? defaultChatPrompt;

  const checkModel = (name: string | undefined) => {
    if (name !== undefined && name !== model.modelName) {
      throw new RequestError(404, `model "${name}" does not exist here; this server serves "${model.modelName}"`, 'model', 'model_not_found');
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, abort: AbortSignal): Promise<number> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname.replace(/\/+$/, '');
    if (route === '/v1/models' || route === `/v1/models/${encodeURIComponent(model.modelName)}`) {
      if (req.method !== 'GET') throw new RequestError(405, `${req.method} is not allowed on ${route}; use GET`);
      const entry = { id: model.modelName, object: 'model', created, owned_by: 'yuan' };
      sendJson(res, 200, route === '/v1/models' ? { object: 'list', data: [entry] } : entry);
      return 200;
    }
    const chat = route === '/v1/chat/completions';
    if (!chat && route !== '/v1/completions') throw new RequestError(404, `no route ${route} (try /v1/models, /v1/completions, /v1/chat/completions)`, null, 'not_found');
    if (req.method !== 'POST') throw new RequestError(405, `${req.method} is not allowed on ${route}; use POST`);
    const body = await readBody(req, limits.maxBodyBytes);
    const parsed = chat ? parseChatRequest(body, limits, format) : parseCompletionRequest(body, limits);
    checkModel(parsed.model);
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const head = { id, created: Math.floor(Date.now() / 1000), model: model.modelName };
    if (parsed.stream) {
      await stream(res, parsed.gen, chat, head, abort);
      return 200;
    }
    const completions = await queue.run(() => model.generate(parsed.gen, abort));
    const usage = usageOf(completions);
    const choices = completions.map((c, index) =>
      chat
        ? { index, message: { role: 'assistant', content: c.text }, finish_reason: c.finishReason, logprobs: null }
        : { index, text: c.text, finish_reason: c.finishReason, logprobs: null },
    );
    sendJson(res, 200, { ...head, object: chat ? 'chat.completion' : 'text_completion', choices, ...(usage ? { usage } : {}) });
    return 200;
  };

  const stream = async (res: ServerResponse, gen: GenerationRequest, chat: boolean, head: Record<string, unknown>, abort: AbortSignal) => {
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const send = (choice: Record<string, unknown>) => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify({ ...head, object, choices: [choice] })}\n\n`);
    };
    const piece = (index: number, text: string) =>
      send(chat ? { index, delta: { content: text }, finish_reason: null } : { index, text, finish_reason: null, logprobs: null });
    const finish = (index: number, reason: string) =>
      send(chat ? { index, delta: {}, finish_reason: reason } : { index, text: '', finish_reason: reason, logprobs: null });
    await queue.run(async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      try {
        for (let index = 0; index < (gen.n ?? 1) && !abort.aborted; index++) {
          if (chat) send({ index, delta: { role: 'assistant', content: '' }, finish_reason: null });
          const one = { ...gen, n: 1, ...(gen.seed !== undefined ? { seed: gen.seed + index } : {}) };
          let done: ServedCompletion;
          if (model.generateStream) {
            done = await model.generateStream(one, (delta) => delta && piece(index, delta), abort);
          } else {
            done = (await model.generate(one, abort))[0]!;
            if (done.text) piece(index, done.text);
          }
          finish(index, done.finishReason);
        }
      } catch (e) {
        if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify({ error: { message: `generation failed: ${(e as Error).message}`, type: 'server_error' } })}\n\n`);
      }
      if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
    });
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
        sendJson(res, 500, { error: { message: `the model failed: ${(e as Error)?.message ?? String(e)}`, type: 'server_error', param: null, code: null } });
        return 500;
      })
      .then((status) => options.log?.(`${req.method} ${req.url} ${status} ${(performance.now() - started).toFixed(0)} ms`))
      .catch(() => undefined);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

function usageOf(completions: ServedCompletion[]): Record<string, number> | undefined {
  const prompt = completions[0]?.promptTokens;
  if (prompt === undefined || completions.some((c) => c.completionTokens === undefined)) return undefined;
  const completion = completions.reduce((a, c) => a + c.completionTokens!, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
