import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, loadCheckpoint, nextTokenLoss } from '../src/index.js';
import { attentionNamed } from './attention.js';

const fixtures = path.resolve(__dirname, '../../../../shared/fixtures/yuan2-tiny');
const lookup = attentionNamed;

describe.skipIf(!existsSync(fixtures))('yuan2-tiny fixture (needs ../shared, which CI has)', () => {
  const expected = existsSync(fixtures)
    ? JSON.parse(readFileSync(path.join(fixtures, 'expected.json'), 'utf8'))
    : undefined;
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('reproduces the reference logits and loss', async () => {
    const model = await loadCheckpoint(fixtures, lookup);
    const ids = tf.tensor2d(expected.input_ids, undefined, 'int32');
    const { logits } = model.forward(ids);
    const got = logits.arraySync();
    let maxDiff = 0;
    got.forEach((b, i) =>
      b.forEach((t, j) => t.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - expected.logits[i][j][k]))))),
    );
    expect(maxDiff).toBeLessThan(expected.tolerance.logits_abs);
    const loss = nextTokenLoss(logits, ids).dataSync()[0];
    expect(Math.abs(loss - expected.loss)).toBeLessThan(expected.tolerance.loss_abs);
    model.dispose();
  });

  it('reproduces every greedy continuation with and without the cache', async () => {
    const model = await loadCheckpoint(fixtures, lookup);
    for (const g of expected.generations) {
      expect(generate(model, g.prompt, { maxNewTokens: g.greedy.length })).toEqual(g.greedy);
      expect(generate(model, g.prompt, { maxNewTokens: g.greedy.length, useCache: false })).toEqual(g.greedy);
    }
    model.dispose();
  });
});
