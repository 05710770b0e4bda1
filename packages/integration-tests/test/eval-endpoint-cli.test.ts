import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createOpenAIServer } from '@yuan/serve';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The eval package's test double (a deterministic text function behind the OpenAI-compatible server), shared as is.
import { ToyServedModel } from '../../eval/test/toy-model.js';
import { builtCli, shared } from './helpers.js';

const dataDir = path.join(shared, 'datasets');
const have = existsSync(path.join(dataDir, 'gsm8k/test.jsonl'));
const toy = new ToyServedModel();
const server = createOpenAIServer(toy);
const out = mkdtempSync(path.join(os.tmpdir(), 'yuan-e2e-cli-'));
let base = '';

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(out, { recursive: true, force: true });
});

describe.skipIf(!have)(
  have
    ? 'yuan eval through an OpenAI-compatible endpoint'
    : `skipped: ${dataDir}/gsm8k/test.jsonl is absent (the shared data folder sits beside the repo in CI)`,
  () => {
    it('runs `yuan eval gsm8k --endpoint URL --limit 20` end to end', async () => {
      const cli = builtCli();
      const dir = path.join(out, 'cli');
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
        (resolve) => {
          execFile(
            process.execPath,
            [
              cli,
              'eval',
              'gsm8k',
              '--endpoint',
              base,
              '--api-model',
              toy.modelName,
              '--limit',
              '20',
              '--output',
              dir,
              '--data-dir',
              dataDir,
              '--json',
            ],
            (err, stdout, stderr) =>
              resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
          );
        },
      );
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const result = JSON.parse(stdout);
      expect(result.task).toBe('gsm8k');
      expect(result.count).toBe(20);
      expect(result.metrics.accuracy).toBeGreaterThanOrEqual(0);
      expect(readFileSync(path.join(dir, 'gsm8k-samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(20);
      expect(JSON.parse(readFileSync(path.join(dir, 'gsm8k-summary.json'), 'utf8')).count).toBe(20);
    });
  },
);
