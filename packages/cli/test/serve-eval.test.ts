import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { getPreset, resolveConfig } from '@yuan/core';
import { saveCheckpoint, YuanModel } from '@yuan/model';
import { initBackend, tf } from '@yuan/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, shared, yuan } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-serve-'));
const modelDir = path.join(tmp, 'tiny');
let server: ChildProcess | undefined;
let url = '';
// The perplexity text (ASCII, so its byte-tokenizer ids are its UTF-8 bytes) and its summed next-token loss computed
// here in float64 from the model's logits, independently of the evaluator, the adapter and the tokenizer.
const pplText = 'The quick brown fox jumps over the lazy dog. '.repeat(4);
let reference = { nll: 0, tokens: 0 };

/** Summed next-token negative log-likelihood of `ids` under `logits` [T, V] (log-softmax in float64). */
function referenceNll(logits: number[][], ids: number[]): number {
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits[t];
    const max = Math.max(...row);
    const logZ = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    nll += logZ - row[ids[t + 1]];
  }
  return nll;
}

beforeAll(async () => {
  await initBackend();
  const config = resolveConfig(getPreset('tiny-lfa').config, {
    model: { numLayers: 1, hiddenSize: 32, ffnSize: 64, maxPositions: 4096 },
  });
  const model = YuanModel.init(config, lfaAttention as never, 1);
  await saveCheckpoint(modelDir, model);
  const ids = [...Buffer.from(pplText, 'utf8')];
  const logits = tf.tidy(
    () =>
      model
        .forward(tf.tensor2d([ids.slice(0, -1)], [1, ids.length - 1], 'int32'))
        .logits.squeeze([0])
        .arraySync() as number[][],
  );
  reference = { nll: referenceNll(logits, ids), tokens: ids.length - 1 };
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

describe('yuan serve', () => {
  it('answers completions, chat and models, and rejects bad requests without crashing', async () => {
    const models = await (await fetch(`${url}/v1/models`)).json();
    expect(models.data[0].id).toBe('tiny');
    const body = { model: 'tiny', prompt: 'Hello', max_tokens: 5, temperature: 0 };
    const c = await (
      await fetch(`${url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      })
    ).json();
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

  it.skipIf(!existsSync(path.join(shared, 'datasets/gsm8k')))(
    'serves `yuan eval gsm8k --endpoint` end to end (needs ../shared, which CI has)',
    async () => {
      const out = path.join(tmp, 'eval');
      const r = await yuan(
        'eval',
        'gsm8k',
        '--endpoint',
        url,
        '--api-model',
        'tiny',
        '--limit',
        '20',
        '--max-new-tokens',
        '8',
        '--output',
        out,
        '--data-dir',
        path.join(shared, 'datasets'),
        '--json',
      );
      expect(r.code, r.err).toBe(0);
      const summary = JSON.parse(readFileSync(path.join(out, 'gsm8k-summary.json'), 'utf8'));
      expect(JSON.stringify(summary)).toMatch(/accuracy/);
      expect(readFileSync(path.join(out, 'gsm8k-samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(20);
    },
  );
});

const yuanData = existsSync(path.join(shared, 'datasets/yuan-eval/mathcloze.txt'));

describe.skipIf(!yuanData)(
  yuanData ? 'yuan eval --protocol yuan' : 'skipped: ../shared/datasets/yuan-eval is absent (CI has it)',
  () => {
    const data = path.join(shared, 'datasets');
    const common = ['--limit', '1', '--max-new-tokens', '4', '--data-dir', data, '--json'];

    it('runs every protocol task over HTTP (yuan serve) and on the local checkpoint', async () => {
      for (const task of ['gsm8k', 'mathqa', 'mathcloze', 'truthfulqa', 'humaneval']) {
        const extra =
          task === 'humaneval'
            ? ['--select', 'tests', '--n', '2', '--temperature', '0.5']
            : ['--n', '2', '--k', '1,2', '--temperature', '0.5'];
        for (const source of [
          ['--endpoint', url, '--api-model', 'tiny'],
          ['--model', modelDir],
        ]) {
          const r = await yuan(
            'eval',
            task,
            '--protocol',
            'yuan',
            ...source,
            ...extra,
            ...common,
            '--output',
            path.join(tmp, `y-${task}-${source[0]}`),
          );
          expect(r.code, `${task} ${source[0]}: ${r.err}`).toBe(0);
          const result = JSON.parse(r.out);
          expect(result.details.protocol).toBe('yuan');
          expect(result.details.paper.reported).toBeTypeOf('object');
        }
      }
    });

    it('truthfulqa --lang en: log-likelihoods of a local model; an endpoint without logprobs is refused in one line', async () => {
      const local = await yuan(
        'eval',
        'truthfulqa',
        '--lang',
        'en',
        '--model',
        modelDir,
        ...common,
        '--output',
        path.join(tmp, 'tqa-en'),
      );
      expect(local.code, local.err).toBe(0);
      expect(Object.keys(JSON.parse(local.out).metrics)).toEqual(['mc1', 'mc2']);
      const http = await yuan(
        'eval',
        'truthfulqa',
        '--lang',
        'en',
        '--endpoint',
        url,
        '--api-model',
        'tiny',
        '--logprobs',
        ...common,
        '--output',
        path.join(tmp, 'tqa-http'),
      );
      // yuan serve returns prompt logprobs with echo, so the endpoint scores the options as the local model does
      expect(http.code, http.err).toBe(0);
      const [a, b] = [JSON.parse(local.out).metrics, JSON.parse(http.out).metrics];
      expect(b.mc1).toBeCloseTo(a.mc1, 6);
      expect(b.mc2).toBeCloseTo(a.mc2, 4);
    });
  },
);

describe('yuan eval on a local checkpoint', () => {
  it('perplexity of a text file through --model is exp(mean next-token loss) of the saved model', async () => {
    const file = path.join(tmp, 'text.txt');
    writeFileSync(file, pplText);
    const r = await yuan(
      'eval',
      'perplexity',
      '--model',
      modelDir,
      '--file',
      file,
      '--output',
      path.join(tmp, 'ppl'),
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    const loss = reference.nll / reference.tokens;
    expect(result.task).toBe('perplexity');
    expect(result.count).toBe(1);
    expect(result.details.tokens).toBe(reference.tokens);
    expect(result.details.bytes).toBe(Buffer.byteLength(pplText));
    // a fresh model is near-uniform over its 264 ids: the loss is about ln 264 = 5.58, so these are real numbers
    expect(loss).toBeGreaterThan(5);
    expect(result.metrics.loss).toBeCloseTo(loss, 4);
    expect(Math.abs(result.metrics.perplexity / Math.exp(loss) - 1)).toBeLessThan(1e-4);
    expect(result.metrics.bits_per_byte).toBeCloseTo(reference.nll / Math.LN2 / Buffer.byteLength(pplText), 4);
  });
});
