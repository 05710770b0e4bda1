// Each attention of @yuan/attention-family trained with pipeline (`--pp 2`) and data (`--dp 2`) parallelism from the
// CLI (worker-thread ranks) gives the single-process losses and gradient norms.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, maxDiff, rankFreeEnv, series, weights } from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-family-'));
const data = path.join(tmp, 'data');
const env = rankFreeEnv();

/** A tiny run (hidden 32, 4 heads of 8, 2 layers, 4 micro-batches of 2 × 16 tokens) of one attention. */
function train(attention: string[], out: string, parallel: string[] = []) {
  const r = spawnSync(
    process.execPath,
    [
      bin,
      'train',
      '--preset',
      'tiny-mha',
      ...attention.flatMap((s) => ['--set', s]),
      ...['model.hiddenSize=32', 'model.numHeads=4', 'model.numLayers=2', 'model.ffnSize=64'].flatMap((s) => [
        '--set',
        s,
      ]),
      ...['train.seqLength=16', 'train.microBatchSize=2', 'train.warmupSteps=1'].flatMap((s) => ['--set', s]),
      '--data',
      data,
      '--seed',
      '3',
      '--steps',
      '3',
      '--microbatches',
      '4',
      '--out',
      out,
      ...parallel,
    ],
    { encoding: 'utf8', env, timeout: 120_000 },
  );
  return { code: r.status, err: r.stderr };
}

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from({ length: 60 }, (_, i) => `Paragraph ${i}: every attention trains in parallel, line ${i * 7}.`).join(
      '\n\n',
    ),
  );
  const r = await yuan('data', 'prepare', path.join(tmp, 'corpus.txt'), '--tokenizer', 'bytes', '--output', data);
  expect(r.code, r.err).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// small blocks and windows, so that the 16-token sequences cross them
const attentions: [string, string[]][] = [
  ['gqa', ['attention.name=gqa', 'attention.options.kvHeads=2']],
  ['mla', ['attention.name=mla', 'attention.options.kvRank=12', 'attention.options.ropeDim=4']],
  ['based', ['attention.name=based', 'attention.options.window=4', 'attention.options.featureDim=4']],
  ['landmark', ['attention.name=landmark', 'attention.options.block=4', 'attention.options.topK=2']],
];

describe.each(attentions)('%s', (name, attention) => {
  it('--pp 2 and --dp 2 (threads) give the single-process losses, gradient norms and parameters', () => {
    const single = path.join(tmp, `${name}-single`);
    const s = train(attention, single);
    expect(s.code, s.err).toBe(0);
    for (const parallel of [
      ['--pp', '2'],
      ['--dp', '2'],
    ]) {
      const out = path.join(tmp, `${name}${parallel.join('')}`);
      const r = train(attention, out, parallel);
      expect(r.code, r.err).toBe(0);
      expectClose(series(out, 'loss'), series(single, 'loss'));
      expectClose(series(out, 'gradNorm'), series(single, 'gradNorm'));
      expect(maxDiff(weights(out), weights(single))).toBeLessThan(1e-5);
    }
  }, 300_000);
});
