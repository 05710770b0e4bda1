import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIEndpointAdapter, runEvaluation } from '../src/index.js';
import { createOpenAIServer } from '@yuan/serve';
import { dataDir, hasData, noData } from './shared.js';
import { ToyServedModel } from './toy-model.js';

// The served model is a test double (see toy-model.ts): these tests check the plumbing server → HTTP → adapter →
// evaluator → files, not a score. The same path with the real model is `yuan serve --model DIR`.
const have = hasData('gsm8k/test.jsonl');
const toy = new ToyServedModel();
const server = createOpenAIServer(toy);
const out = mkdtempSync(path.join(os.tmpdir(), 'yuan-e2e-'));
let base = '';

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(out, { recursive: true, force: true });
});

describe.skipIf(!have)(have ? 'gsm8k through an OpenAI-compatible endpoint' : noData('gsm8k/test.jsonl'), () => {
  it('runs 20 questions with self-consistency through the API and writes the log and summary', async () => {
    const model = new OpenAIEndpointAdapter({ endpoint: base, model: toy.modelName });
    const run = await runEvaluation({
      evaluator: 'gsm8k',
      model,
      settings: { dataDir, limit: 20, n: 3, k: [1, 3], temperature: 0.7, workers: 4 },
      outputDir: path.join(out, 'api'),
    });
    expect(run.result.count).toBe(20);
    const lines = readFileSync(run.samplesFile!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.sample !== undefined)).toHaveLength(60);
    // the double's answer is the prompt length mod 97 (+ sample index when sampling): the extraction must find exactly it
    const first = lines.find((l) => l.question_id === '0' && l.sample === 1)!;
    expect(first.completion).toMatch(/^ The answer is \d+\.$/);
    expect(first.extracted).toBe(first.completion.match(/\d+/)[0]);
    const summary = JSON.parse(readFileSync(run.summaryFile!, 'utf8'));
    expect(summary.model).toBe(`toy-test-double@${base}/v1`);
    expect(Object.keys(summary.metrics).sort()).toEqual(['accuracy', 'maj@3', 'mean_accuracy']);
  });

  it('leaves the previous result files whole when a run fails half-way', async () => {
    const dir = path.join(out, 'api');
    const before = readFileSync(path.join(dir, 'gsm8k-summary.json'), 'utf8');
    const samplesBefore = readFileSync(path.join(dir, 'gsm8k-samples.jsonl'), 'utf8');
    const model = new OpenAIEndpointAdapter({ endpoint: base, model: toy.modelName, retries: 0 });
    let calls = 0;
    const flaky = {
      name: 'flaky',
      generate: async (req: Parameters<typeof model.generate>[0]) => {
        if (++calls > 5) toy.failNext = 1000;
        return model.generate(req);
      },
    };
    await expect(
      runEvaluation({ evaluator: 'gsm8k', model: flaky, settings: { dataDir, limit: 20, workers: 1 }, outputDir: dir }),
    ).rejects.toThrow(/HTTP 500/);
    toy.failNext = 0;
    expect(readFileSync(path.join(dir, 'gsm8k-summary.json'), 'utf8')).toBe(before);
    expect(readFileSync(path.join(dir, 'gsm8k-samples.jsonl'), 'utf8')).toBe(samplesBefore);
    expect(readdirSync(dir).sort()).toEqual(['gsm8k-samples.jsonl', 'gsm8k-summary.json']);
  });
  // `yuan eval gsm8k --endpoint` (the built CLI) is in packages/integration-tests.
});
