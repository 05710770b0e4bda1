import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { getPreset, resolveConfig } from '@yuan/core';
import { saveCheckpoint, YuanModel } from '@yuan/model';
import { ByteTokenizer } from '@yuan/tokenizer';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, yuan } from './run.js';

// `yuan serve` as real clients see it: text fidelity, stop strings, 400 before streaming, the OpenAI surface, and the
// official `openai` Python client and lm-eval driving it. A tiny random byte-level model with a 256-token context.
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-clients-'));
const modelDir = path.join(tmp, 'tiny');
const tok = new ByteTokenizer();
let server: ChildProcess | undefined;
let url = '';

/** The Python with the client packages (.ci/run makes `.venv-clients`; YUAN_CLIENTS_PYTHON overrides). */
const python = process.env.YUAN_CLIENTS_PYTHON ?? path.join(repoRoot, '.venv-clients', 'bin', 'python');
const canImport = (module: string) =>
  existsSync(python) && spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
const hasOpenAI = canImport('openai');
const hasLmEval = canImport('lm_eval');

beforeAll(async () => {
  await initBackend();
  const config = resolveConfig(getPreset('tiny-lfa').config, {
    model: { numLayers: 1, hiddenSize: 32, ffnSize: 64, maxPositions: 256, initStd: 0.3 },
  });
  const model = YuanModel.init(config, lfaAttention as never, 7);
  await saveCheckpoint(modelDir, model);
  model.dispose();
  server = spawn(
    process.execPath,
    [path.join(repoRoot, 'packages/cli/dist/bin.js'), 'serve', '--model', modelDir, '--port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server!.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)\/v1/);
      if (m) resolve(m[1]);
    });
    server!.once('exit', (code) => reject(new Error(`yuan serve exited with ${code}`)));
  });
});

afterAll(() => {
  server?.kill('SIGTERM');
});

async function post(route: string, body: unknown) {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const json = (() => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  })();
  return { status: res.status, text, json };
}

/** The data payloads of a server-sent event stream (without the final [DONE]). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON as the server sent it
function events(text: string): Record<string, any>[] {
  const lines = text.split('\n\n').filter((l) => l.startsWith('data: '));
  expect(lines.at(-1)).toBe('data: [DONE]');
  return lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
}

const streamedText = (text: string) =>
  events(text)
    .map((e) => e.choices[0]?.text ?? '')
    .join('');

describe('yuan serve: what the model says is exactly what it generated', () => {
  it('the text equals decode(prompt + generated) − decode(prompt), streamed and not', async () => {
    for (const prompt of ['Hello', 'The answer is', 'é']) {
      const gen = await yuan('generate', '--model', modelDir, '--prompt', prompt, '--max-new-tokens', '40', '--json');
      expect(gen.code, gen.err).toBe(0);
      const ids: number[] = JSON.parse(gen.out).ids;
      const end = ids.indexOf(tok.special.eod);
      const newIds = end >= 0 ? ids.slice(0, end) : ids;
      const p = tok.encode(prompt);
      const want = tok.decode([...p, ...newIds]).slice(tok.decode(p).length);
      const r = await post('/v1/completions', { prompt, max_tokens: 40, temperature: 0 });
      expect(r.json.choices[0].text).toBe(want);
      expect(JSON.parse(gen.out).text).toBe(want);
      const s = await post('/v1/completions', { prompt, max_tokens: 40, temperature: 0, stream: true });
      expect(streamedText(s.text)).toBe(want);
      // nothing streamed is retracted: each chunk is a piece of the final text, in order
      let at = 0;
      for (const e of events(s.text)) {
        const piece: string = e.choices[0]?.text ?? '';
        expect(want.slice(at, at + piece.length)).toBe(piece);
        at += piece.length;
      }
    }
  });

  it('a stop string spanning tokens is cut exactly, streamed, not streamed and in `yuan generate --stop`', async () => {
    const whole = (
      await post('/v1/completions', { prompt: 'ROMEO:\n', max_tokens: 40, temperature: 0, ignore_eos: true })
    ).json.choices[0].text as string;
    const chars = [...whole];
    expect(chars.length).toBeGreaterThan(8);
    const stop = chars.slice(3, 6).join('');
    const want = whole.slice(0, whole.indexOf(stop));
    const r = await post('/v1/completions', {
      prompt: 'ROMEO:\n',
      max_tokens: 40,
      temperature: 0,
      stop,
      ignore_eos: true,
    });
    expect(r.json.choices[0]).toMatchObject({ text: want, finish_reason: 'stop' });
    const s = await post('/v1/completions', {
      prompt: 'ROMEO:\n',
      max_tokens: 40,
      temperature: 0,
      stop: [stop],
      stream: true,
      ignore_eos: true,
    });
    expect(streamedText(s.text)).toBe(want);
    const g = await yuan(
      'generate',
      '--model',
      modelDir,
      '--prompt',
      'ROMEO:\n',
      '--max-new-tokens',
      '40',
      '--stop-ids',
      '9999999',
      '--stop',
      stop,
      '--json',
    );
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).text).toBe(want);
  });

  it('a prompt past the context is a 400 naming the parameter, decided before streaming starts', async () => {
    for (const stream of [false, true]) {
      const r = await post('/v1/completions', { prompt: 'x'.repeat(300), max_tokens: 4, stream });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ param: 'prompt', type: 'invalid_request_error' });
      expect(r.json.error.message).toMatch(/maximum context length is 256 tokens; the prompt has 300/);
      const c = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x'.repeat(300) }], stream });
      expect(c.status).toBe(400);
      expect(c.json.error.param).toBe('messages');
    }
    const ids = await post('/v1/completions', { prompt: [1, 2, 70000] });
    expect(ids.status).toBe(400);
    expect(ids.json.error.param).toBe('prompt');
  });

  it('the OpenAI surface: chat max_tokens defaults to the context, include_usage, prompts as ids and arrays, echo + logprobs', async () => {
    const chat = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0,
      ignore_eos: true,
    });
    const promptTokens = chat.json.usage.prompt_tokens;
    expect(chat.json.usage.completion_tokens).toBe(256 - promptTokens);
    expect(chat.json.choices[0].finish_reason).toBe('length');

    const s = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    const last = events(s.text).at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: promptTokens });

    const text = await post('/v1/completions', { prompt: 'Hello', max_tokens: 6, temperature: 0 });
    const asIds = await post('/v1/completions', { prompt: tok.encode('Hello'), max_tokens: 6, temperature: 0 });
    const lists = await post('/v1/completions', {
      prompt: [tok.encode('Hello'), tok.encode('Hi')],
      max_tokens: 6,
      temperature: 0,
    });
    const strings = await post('/v1/completions', { prompt: ['Hello', 'Hi'], max_tokens: 6, temperature: 0 });
    expect(asIds.json.choices[0].text).toBe(text.json.choices[0].text);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON as the server sent it
    expect(lists.json.choices.map((c: any) => c.text)).toEqual(strings.json.choices.map((c: any) => c.text));
    expect(lists.json.choices[0].text).toBe(text.json.choices[0].text);

    const echo = await post('/v1/completions', {
      prompt: 'Hello',
      max_tokens: 1,
      temperature: 0,
      echo: true,
      logprobs: 1,
    });
    const lp = echo.json.choices[0].logprobs;
    expect(echo.json.choices[0].text.startsWith('Hello')).toBe(true);
    expect(lp.tokens.slice(0, 5)).toEqual(['H', 'e', 'l', 'l', 'o']);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.token_logprobs).toHaveLength(6);
    // the last token is the greedy one: its logprob is the top one
    expect(lp.token_logprobs[5]).toBeCloseTo(Math.max(...(Object.values(lp.top_logprobs[5]) as number[])), 6);
  });

  it('concurrent requests are batched and each gets what it gets alone', async () => {
    const bodies = ['a', 'Hello there', 'xyz', 'The quick brown fox jumps'].map((prompt, i) => ({
      prompt,
      max_tokens: 10 + i * 3,
      temperature: 0,
    }));
    const alone = [];
    for (const b of bodies) alone.push((await post('/v1/completions', b)).json.choices[0].text);
    const together = await Promise.all(bodies.map((b) => post('/v1/completions', b)));
    expect(together.map((r) => r.json.choices[0].text)).toEqual(alone);
  });
});

describe('real clients against yuan serve', () => {
  it.skipIf(!hasOpenAI)(
    `the official openai Python client (${hasOpenAI ? python : 'skipped: no Python with the openai package; .ci/run installs it into .venv-clients'})`,
    () => {
      const r = spawnSync(python, [path.join(__dirname, 'clients/openai_client.py'), url, 'tiny'], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/openai client: ok/);
    },
  );

  it.skipIf(!hasLmEval)(
    `lm-eval local-completions (default settings, batch 1 and 2) and local-chat-completions (${hasLmEval ? python : 'skipped: lm-eval cannot be imported; .ci/run tries to install it into .venv-clients'})`,
    () => {
      const r = spawnSync(
        python,
        [path.join(__dirname, 'clients/lm_eval_run.py'), url, 'tiny', path.join(tmp, 'lm-eval')],
        {
          encoding: 'utf8',
          timeout: 300_000,
          env: { ...process.env, HF_DATASETS_OFFLINE: '1', HF_HUB_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' },
        },
      );
      expect(r.status, `${r.stdout}\n${r.stderr.slice(-3000)}`).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      expect(out.mc_acc).toBeGreaterThanOrEqual(0);
      expect(out.gen_em).toBeGreaterThanOrEqual(0);
      expect(out.chat_em).toBeGreaterThanOrEqual(0);
      expect(out.chat_resps).toHaveLength(4);
      // every log-likelihood is a negative sum of token logprobs, the same with 1 or 2 prompts per request
      const lls = (out.loglikelihoods as unknown[]).flat(3).filter((x): x is number => typeof x === 'number');
      const lls2 = (out.loglikelihoods_batch2 as unknown[]).flat(3).filter((x): x is number => typeof x === 'number');
      expect(lls.length).toBe(8);
      for (const ll of lls) expect(ll).toBeLessThan(0);
      lls.forEach((ll, i) => expect(lls2[i]).toBeCloseTo(ll, 4));
    },
  );
});
