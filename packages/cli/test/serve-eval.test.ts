import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { getPreset, resolveConfig } from '@yuan/core';
import { saveCheckpoint, YuanModel } from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, shared, yuan } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-serve-'));
const modelDir = path.join(tmp, 'tiny');
let server: ChildProcess | undefined;
let url = '';

beforeAll(async () => {
  await initBackend();
  const config = resolveConfig(getPreset('tiny-lfa').config, { model: { numLayers: 1, hiddenSize: 32, ffnSize: 64, maxPositions: 4096 } });
  const model = YuanModel.init(config, lfaAttention as never, 1);
  await saveCheckpoint(modelDir, model);
  model.dispose();
  server = spawn(process.execPath, [path.join(repoRoot, 'packages/cli/dist/bin.js'), 'serve', '--model', modelDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

describe('yuan serve', () => {
  it('answers completions, chat and models, and rejects bad requests without crashing', async () => {
    const models = await (await fetch(`${url}/v1/models`)).json();
    expect(models.data[0].id).toBe('tiny');
    const body = { model: 'tiny', prompt: 'Hello', max_tokens: 5, temperature: 0 };
    const c = await (await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })).json();
    expect(typeof c.choices[0].text).toBe('string');
    const again = await (await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify(body) })).json();
    expect(again.choices[0].text).toBe(c.choices[0].text);
    const bad = await fetch(`${url}/v1/completions`, { method: 'POST', body: '{"prompt": 3, "max_tokens": -1}' });
    expect(bad.status).toBe(400);
    const stream = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }),
    });
    const text = await stream.text();
    expect(text).toMatch(/^data: /);
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    expect((await fetch(`${url}/v1/models`)).status).toBe(200);
  });

  it.skipIf(!existsSync(path.join(shared, 'datasets/gsm8k')))('serves `yuan eval gsm8k --endpoint` end to end (needs ../shared, which CI has)', async () => {
    const out = path.join(tmp, 'eval');
    const r = await yuan('eval', 'gsm8k', '--endpoint', url, '--api-model', 'tiny', '--limit', '20', '--max-new-tokens', '8', '--output', out, '--data-dir', path.join(shared, 'datasets'), '--json');
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(readFileSync(path.join(out, 'gsm8k-summary.json'), 'utf8'));
    expect(JSON.stringify(summary)).toMatch(/accuracy/);
    expect(readFileSync(path.join(out, 'gsm8k-samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(20);
  });
});

const yuanData = existsSync(path.join(shared, 'datasets/yuan-eval/mathcloze.txt'));

describe.skipIf(!yuanData)(yuanData ? 'yuan eval --protocol yuan' : 'skipped: ../shared/datasets/yuan-eval is absent (CI has it)', () => {
  const data = path.join(shared, 'datasets');
  const common = ['--limit', '1', '--max-new-tokens', '4', '--data-dir', data, '--json'];

  it('runs every protocol task over HTTP (yuan serve) and on the local checkpoint', async () => {
    for (const task of ['gsm8k', 'mathqa', 'mathcloze', 'truthfulqa', 'humaneval']) {
      const extra = task === 'humaneval' ? ['--select', 'tests', '--n', '2', '--temperature', '0.5'] : ['--n', '2', '--k', '1,2', '--temperature', '0.5'];
      for (const source of [['--endpoint', url, '--api-model', 'tiny'], ['--model', modelDir]]) {
        const r = await yuan('eval', task, '--protocol', 'yuan', ...source, ...extra, ...common, '--output', path.join(tmp, `y-${task}-${source[0]}`));
        expect(r.code, `${task} ${source[0]}: ${r.err}`).toBe(0);
        const result = JSON.parse(r.out);
        expect(result.details.protocol).toBe('yuan');
        expect(result.details.paper.reported).toBeTypeOf('object');
      }
    }
  });

  it('truthfulqa --lang en: log-likelihoods of a local model; an endpoint without logprobs is refused in one line', async () => {
    const local = await yuan('eval', 'truthfulqa', '--lang', 'en', '--model', modelDir, ...common, '--output', path.join(tmp, 'tqa-en'));
    expect(local.code, local.err).toBe(0);
    expect(Object.keys(JSON.parse(local.out).metrics)).toEqual(['mc1', 'mc2']);
    const http = await yuan('eval', 'truthfulqa', '--lang', 'en', '--endpoint', url, '--api-model', 'tiny', '--logprobs', ...common, '--output', path.join(tmp, 'tqa-http'));
    expect(http.code).not.toBe(0);
    expect(http.err.trim()).toMatch(/^error: truthfulqa --lang en needs option log-likelihoods[^\n]*echo/);
  });
});

describe('yuan eval on a local checkpoint', () => {
  it('perplexity of a text file through --model', async () => {
    const file = path.join(tmp, 'text.txt');
    writeFileSync(file, 'The quick brown fox jumps over the lazy dog. '.repeat(4));
    const r = await yuan('eval', 'perplexity', '--model', modelDir, '--file', file, '--output', path.join(tmp, 'ppl'), '--json');
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(JSON.stringify(result)).toMatch(/perplexity/);
  });
});
