import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend, openSafetensors, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, loadCheckpoint } from '../src/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';
import { referenceGreedy, referenceLogits, type RefConfig, type Weights } from './reference.js';
import { attentionNamed } from './attention.js';

const lookup = attentionNamed;
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-parity-'));

function maxAbsDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}

const shapes: (RefConfig & { prompt: number[] })[] = [
  { hidden: 16, heads: 1, layers: 1, vocab: 40, ffn: 64, eps: 1e-6, prompt: [7] },
  { hidden: 32, heads: 4, layers: 3, vocab: 50, ffn: 48, eps: 1e-6, prompt: [3, 9] },
  { hidden: 24, heads: 2, layers: 2, vocab: 30, ffn: 96, eps: 1e-6, prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9] },
];

// the native backend (OpenBLAS addon) is optional: it is checked where it was built
const nativeBuilt = await initBackend('native').then(
  () => true,
  () => false,
);

describe.each(nativeBuilt ? ['cpu', 'wasm', 'native'] : ['cpu', 'wasm'])(
  'parity with an independent reference on random HF-layout checkpoints (%s backend)',
  (backend) => {
    beforeAll(async () => {
      await initBackend(backend);
    });
    shapes.forEach((c, n) => {
      it(`hidden ${c.hidden}, ${c.heads} heads, ${c.layers} layers, prompt of ${c.prompt.length}`, async () => {
        const dir = path.join(tmp, `ckpt-${n}`);
        const weights = await writeRandomCheckpoint(dir, c, 100 + n);
        const model = await loadCheckpoint(dir, lookup);
        expect(model.config.attention.name).toBe('lfa');
        const ids = Array.from({ length: 12 }, (_, i) => (i * 7 + n) % c.vocab);
        const got = tf.tidy(() => model.forward(tf.tensor2d([ids], undefined, 'int32')).logits.arraySync()[0]);
        expect(maxAbsDiff(got, referenceLogits(weights, c, ids))).toBeLessThan(2e-4);
        const want = referenceGreedy(weights, c, c.prompt, 10);
        expect(generate(model, c.prompt, { maxNewTokens: 10 })).toEqual(want);
        expect(generate(model, c.prompt, { maxNewTokens: 10, useCache: false })).toEqual(want);
        model.dispose();
      });
    });
  },
);

const fixtures = path.resolve(__dirname, '../../../../shared/fixtures/yuan2-tiny');
describe.skipIf(!existsSync(fixtures))(
  'the reference itself matches the PyTorch fixture (needs ../shared, which CI has)',
  () => {
    it('reference logits within tolerance', async () => {
      const expected = JSON.parse(readFileSync(path.join(fixtures, 'expected.json'), 'utf8'));
      const cfg = JSON.parse(readFileSync(path.join(fixtures, 'config.json'), 'utf8'));
      const st = await openSafetensors(path.join(fixtures, 'model.safetensors'));
      const w: Weights = new Map();
      for (const [name, e] of st.entries) w.set(name, { shape: e.shape, data: await st.read(name) });
      await st.close();
      const c = {
        hidden: cfg.hidden_size,
        heads: cfg.num_attention_heads,
        layers: cfg.num_hidden_layers,
        vocab: cfg.vocab_size,
        ffn: cfg.intermediate_size,
        eps: 1e-6,
      };
      expect(maxAbsDiff(referenceLogits(w, c, expected.input_ids[0]), expected.logits[0])).toBeLessThan(2e-4);
    });
  },
);
