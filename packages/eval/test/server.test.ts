import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIEndpointAdapter } from '../src/index.js';
import { createOpenAIServer } from '@yuan/serve';
import { ToyServedModel } from './toy-model.js';

const toy = new ToyServedModel();
const server = createOpenAIServer(toy);
let base = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function post(path: string, body: unknown, raw = false) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    json: (() => {
      try {
        return JSON.parse(text);
      } catch {
        return undefined;
      }
    })(),
  };
}

function events(text: string): unknown[] {
  const lines = text.split('\n\n').filter((l) => l.startsWith('data: '));
  expect(lines.at(-1)).toBe('data: [DONE]');
  return lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
}

describe('OpenAI-compatible server', () => {
  it('lists its model', async () => {
    const res = await fetch(`${base}/v1/models`);
    expect(await res.json()).toMatchObject({ object: 'list', data: [{ id: 'toy-test-double', object: 'model' }] });
  });

  it('answers completions with n choices, stop strings and usage', async () => {
    const r = await post('/v1/completions', {
      model: 'toy-test-double',
      prompt: 'abc',
      max_tokens: 10,
      n: 2,
      temperature: 0.5,
      stop: ['is'],
    });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('text_completion');
    expect(r.json.choices.map((c: { text: string }) => c.text)).toEqual([' The answer ', ' The answer ']);
    expect(r.json.choices[0].finish_reason).toBe('stop');
    expect(r.json.usage).toEqual({ prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 });
    const short = await post('/v1/completions', { prompt: 'abc', max_tokens: 2 });
    expect(short.json.choices[0]).toMatchObject({ text: ' The answer', finish_reason: 'length' });
  });

  it('answers chat completions, streamed and not', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 });
    expect(r.json.object).toBe('chat.completion');
    expect(r.json.choices[0].message).toEqual({
      role: 'assistant',
      content: ` The answer is ${'user: hi\nassistant:'.length % 97}.`,
    });
    const s = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 20,
      stream: true,
    });
    const chunks = events(s.text) as {
      object: string;
      choices: { delta: { content?: string }; finish_reason: string | null }[];
    }[];
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(r.json.choices[0].message.content);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    const c = await post('/v1/completions', { prompt: 'xyz', max_tokens: 20, stream: true });
    expect((events(c.text) as { choices: { text: string }[] }[]).map((e) => e.choices[0]!.text).join('')).toBe(
      ' The answer is 3.',
    );
  });

  it.each([
    ['invalid JSON', '{"prompt": ', 400, /not valid JSON/],
    ['an array body', '[1,2]', 400, /JSON object/],
    ['a missing prompt', { max_tokens: 3 }, 400, /prompt must be a string/],
    ['a numeric prompt', { prompt: 5 }, 400, /prompt must be a string/],
    ['a mixed prompt array', { prompt: ['a', 1] }, 400, /prompt must be a string/],
    ['negative token ids', { prompt: [1, -2] }, 400, /non-negative integers/],
    ['a prompt past the context', { prompt: 'x'.repeat(1001) }, 400, /the context is 1000/],
    ['a penalty it would ignore', { prompt: 'a', presence_penalty: 0.5 }, 400, /presence_penalty/],
    ['stream_options without stream', { prompt: 'a', stream_options: { include_usage: true } }, 400, /stream_options/],
    ['too many tokens', { prompt: 'a', max_tokens: 100000 }, 400, /max_tokens must be an integer between 0 and 1024/],
    ['fractional tokens', { prompt: 'a', max_tokens: 1.5 }, 400, /max_tokens/],
    ['a string temperature', { prompt: 'a', temperature: 'hot' }, 400, /temperature/],
    ['too many stops', { prompt: 'a', stop: ['a', 'b', 'c', 'd', 'e'] }, 400, /stop/],
    ['n too large', { prompt: 'a', n: 1000 }, 400, /n must be/],
    ['a huge prompt', { prompt: 'x'.repeat(200_000) }, 400, /the prompt has 200000 characters/],
    ['a body over 1 MiB', { prompt: 'x'.repeat(1_100_000) }, 413, /larger than/],
    ['another model', { prompt: 'a', model: 'gpt-17' }, 404, /does not exist here/],
    ['logprobs the model lacks', { prompt: 'a', echo: true, logprobs: 1 }, 400, /logprobs/],
    ['logprobs out of range', { prompt: 'a', logprobs: 50 }, 400, /logprobs must be an integer between 0 and 20/],
    ['a stream flag of the wrong type', { prompt: 'a', stream: 'yes' }, 400, /stream must be a boolean/],
  ])('refuses %s with a JSON error and keeps serving', async (_name, body, status, message) => {
    const r = await post('/v1/completions', body, typeof body === 'string');
    expect(r.status).toBe(status);
    expect(r.json.error.message).toMatch(message);
    expect((await post('/v1/completions', { prompt: 'ok', max_tokens: 1 })).status).toBe(200);
  });

  it('takes prompts as strings, token ids and arrays of either, one choice block per prompt', async () => {
    const r = await post('/v1/completions', { prompt: ['ab', 'abcd'], max_tokens: 50, n: 2, temperature: 0.5 });
    expect(r.json.choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual([
      [0, ' The answer is 2.'],
      [1, ' The answer is 3.'],
      [2, ' The answer is 4.'],
      [3, ' The answer is 5.'],
    ]);
    expect(r.json.usage.prompt_tokens).toBe(6);
    const ids = await post('/v1/completions', { prompt: [1, 2, 3], max_tokens: 50 });
    expect(ids.json.choices[0].text).toBe(' The answer is 3.');
    const lists = await post('/v1/completions', { prompt: [[1], [1, 2, 3, 4, 5]], max_tokens: 50 });
    expect(lists.json.choices.map((c: { text: string }) => c.text)).toEqual([' The answer is 1.', ' The answer is 5.']);
  });

  it('chat without max_tokens is not cut at 16 tokens; stream_options.include_usage ends with a usage chunk', async () => {
    const toyLong = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
    expect(toyLong.json.choices[0].finish_reason).toBe('stop');
    const s = await post('/v1/completions', {
      prompt: 'xyz',
      max_tokens: 20,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = events(s.text) as { choices: unknown[]; usage: unknown }[];
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('refuses a request it cannot serve with 400 before streaming starts', async () => {
    const r = await post('/v1/completions', { prompt: 'x'.repeat(1001), stream: true });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: 'prompt', type: 'invalid_request_error' });
    const c = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'x'.repeat(1001) }],
      stream: true,
    });
    expect(c.status).toBe(400);
    expect(c.json.error.param).toBe('messages');
  });

  it('refuses bad chat messages, unknown routes and wrong methods', async () => {
    expect((await post('/v1/chat/completions', { messages: [] })).json.error.message).toMatch(/non-empty array/);
    expect(
      (await post('/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] })).json.error.message,
    ).toMatch(/role/);
    expect(
      (await post('/v1/chat/completions', { messages: [{ role: 'user', content: 7 }] })).json.error.message,
    ).toMatch(/content must be a string/);
    expect((await post('/v2/everything', {})).status).toBe(404);
    expect((await fetch(`${base}/v1/completions`)).status).toBe(405);
  });

  it('turns a model failure into a 500 and survives garbage on the socket', async () => {
    toy.failNext = 1;
    const r = await post('/v1/completions', { prompt: 'a' });
    expect(r.status).toBe(500);
    expect(r.json.error.message).toMatch(/toy failure/);
    await new Promise<void>((resolve) => {
      const req = http.request(`${base}/v1/completions`, { method: 'POST', headers: { 'content-length': '100' } });
      req.on('error', () => resolve());
      req.write('{"prompt": "abc"');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    expect((await post('/v1/completions', { prompt: 'still here', max_tokens: 3 })).status).toBe(200);
  });
});

describe('OpenAI endpoint adapter', () => {
  it('generates through the server, completions and chat', async () => {
    const adapter = new OpenAIEndpointAdapter({ endpoint: base, model: 'toy-test-double' });
    expect(await adapter.generate({ prompt: 'abcd', maxNewTokens: 50, n: 3 })).toEqual(
      Array(3).fill(' The answer is 4.'),
    );
    const chat = new OpenAIEndpointAdapter({ endpoint: `${base}/v1/`, model: 'toy-test-double', chat: true });
    expect(await chat.generate({ prompt: 'hi', maxNewTokens: 50 })).toEqual([
      ` The answer is ${'user: hi\nassistant:'.length % 97}.`,
    ]);
  });

  it('retries server errors with backoff, gives up on client errors at once', async () => {
    toy.failNext = 2;
    const before = toy.calls;
    const adapter = new OpenAIEndpointAdapter({ endpoint: base, model: 'toy-test-double', retries: 3, backoffMs: 5 });
    expect(await adapter.generate({ prompt: 'ab', maxNewTokens: 50 })).toEqual([' The answer is 2.']);
    expect(toy.calls - before).toBe(3);
    const wrongName = new OpenAIEndpointAdapter({ endpoint: base, model: 'nope', retries: 3, backoffMs: 5 });
    const calls = toy.calls;
    await expect(wrongName.generate({ prompt: 'ab', maxNewTokens: 5 })).rejects.toThrow(
      /HTTP 404: model "nope" does not exist/,
    );
    expect(toy.calls).toBe(calls);
    toy.failNext = 10;
    await expect(adapter.generate({ prompt: 'ab', maxNewTokens: 5 })).rejects.toThrow(
      /failed after 4 attempts \(last: HTTP 500/,
    );
    toy.failNext = 0;
  });

  it('times out a silent server and names the bad endpoint URL', async () => {
    const silent = http.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const adapter = new OpenAIEndpointAdapter({ endpoint: url, model: 'm', timeoutMs: 200, retries: 1, backoffMs: 5 });
    await expect(adapter.generate({ prompt: 'a', maxNewTokens: 1 })).rejects.toThrow(/no answer within 200 ms/);
    silent.closeAllConnections();
    silent.close();
    expect(() => new OpenAIEndpointAdapter({ endpoint: 'not a url', model: 'm' })).toThrow(/is not a URL/);
    expect(() => new OpenAIEndpointAdapter({ endpoint: url, model: '' })).toThrow(/--api-model/);
  });
});
