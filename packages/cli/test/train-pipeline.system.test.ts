import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageFaultEnv } from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-pp-'));
const data = path.join(tmp, 'data');
const tiny = [
  '--preset',
  'tiny-lfa',
  '--set',
  'model.hiddenSize=32',
  '--set',
  'model.numLayers=3',
  '--set',
  'model.ffnSize=64',
  '--set',
  'train.seqLength=16',
  '--set',
  'train.microBatchSize=2',
  '--set',
  'train.warmupSteps=3',
  '--data',
  data,
  '--seed',
  '5',
  '--backend',
  'wasm',
];

const losses = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss as number);
const cli = (args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, [bin, 'train', ...tiny, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status, err: r.stderr };
};
const close = (a: number[], b: number[]) =>
  a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= 1e-4 * Math.abs(b[i]));

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from(
      { length: 60 },
      (_, i) => `Paragraph ${i}: a small corpus for a small model, line ${i * 13}.\nIt has two lines.\n`,
    ).join('\n'),
  );
  const r = await yuan(
    'data',
    'prepare',
    '--input',
    path.join(tmp, 'corpus.txt'),
    '--tokenizer',
    'bytes',
    '--output',
    data,
    '--valid-fraction',
    '0.1',
  );
  expect(r.code).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan train --pp', () => {
  it('--pp 2 gives the single-process losses, and a --pp 2 checkpoint resumes as --pp 1', async () => {
    const single = cli(['--steps', '4', '--microbatches', '2', '--out', path.join(tmp, 'single')]);
    expect(single.code).toBe(0);
    const pp = cli([
      '--steps',
      '2',
      '--pp',
      '2',
      '--microbatches',
      '2',
      '--partition',
      '2,1',
      '--schedule',
      'gpipe',
      '--out',
      path.join(tmp, 'pp'),
    ]);
    expect([pp.code, pp.err.split('\n').filter((l) => l.startsWith('error'))]).toEqual([0, []]);
    const resumed = cli([
      '--steps',
      '4',
      '--microbatches',
      '2',
      '--resume',
      path.join(tmp, 'pp'),
      '--out',
      path.join(tmp, 'pp'),
    ]);
    expect(resumed.code).toBe(0);
    expect(close(losses(path.join(tmp, 'pp')), losses(path.join(tmp, 'single')))).toBe(true);
    // the checkpoint is the ordinary HF layout: `yuan generate` loads it
    const g = await yuan(
      'generate',
      '--model',
      path.join(tmp, 'pp'),
      '--prompt-ids',
      '1,2,3',
      '--max-new-tokens',
      '2',
      '--backend',
      'wasm',
    );
    expect(g.code).toBe(0);
  });

  it('a stage that throws stops the run: non-zero exit, a one-line message naming stage and step, no partial checkpoint', () => {
    const out = path.join(tmp, 'fault');
    const r = cli(
      ['--steps', '4', '--pp', '2', '--microbatches', '1', '--set', 'train.checkpointEvery=2', '--out', out],
      stageFaultEnv(tmp, { stage: 1, step: 3, kind: 'throw' }),
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/note: --microbatches 1 < --pp 2: the pipeline never fills/);
    expect(r.err).toMatch(/^error: pipeline stage 1 failed at step 3: injected fault in stage 1$/m);
    expect(
      readdirSync(out)
        .filter((n) => n.startsWith('checkpoint'))
        .sort(),
    ).toEqual(['checkpoint-00000002']);
  });

  it('bad pipeline flags are one-line errors', () => {
    const out = ['--steps', '1', '--out', path.join(tmp, 'bad')];
    expect(cli([...out, '--pp', '2', '--partition', '2,2']).err).toMatch(
      /^error: partition blocks 2,2 sum to 4 layers; the model has 3\n?$/,
    );
    expect(cli([...out, '--pp', '4']).err).toMatch(/^error: --pp 4 has more stages than the model's 3 layers\n?$/);
    expect(cli([...out, '--pp', '2', '--microbatches', '0']).err).toMatch(
      /^error: --microbatches "0" is not an integer >= 1\n?$/,
    );
    expect(cli([...out, '--pp', '2', '--schedule', 'zigzag']).err).toMatch(
      /^error: unknown schedule "zigzag" \(schedules: 1f1b, gpipe, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto\)\n?$/,
    );
  });
});
