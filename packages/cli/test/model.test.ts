import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shared, yuan, yuanProcess } from './run.js';

const fixture = path.join(shared, 'fixtures/yuan2-tiny');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-'));

describe.skipIf(!existsSync(fixture))(
  'forward and generate on the PyTorch fixture (needs ../shared, which CI has)',
  () => {
    const expected = existsSync(fixture)
      ? JSON.parse(readFileSync(path.join(fixture, 'expected.json'), 'utf8'))
      : undefined;

    it('forward reproduces the reference logits and loss', async () => {
      const input = path.join(tmp, 'in.json');
      const output = path.join(tmp, 'out.json');
      writeFileSync(input, JSON.stringify({ input_ids: expected.input_ids }));
      const r = await yuan('forward', '--model', fixture, '--input', input, '--output', output);
      expect(r.code).toBe(0);
      const got = JSON.parse(readFileSync(output, 'utf8'));
      let max = 0;
      got.logits.forEach((b: number[][], i: number) =>
        b.forEach((t, j) => t.forEach((v, k) => (max = Math.max(max, Math.abs(v - expected.logits[i][j][k]))))),
      );
      expect(max).toBeLessThan(expected.tolerance.logits_abs);
      expect(Math.abs(got.loss - expected.loss)).toBeLessThan(expected.tolerance.loss_abs);
    });

    it('generate --temperature 0 reproduces every greedy continuation, with and without the cache', async () => {
      for (const g of expected.generations) {
        for (const extra of [[], ['--no-cache']]) {
          const r = await yuan(
            'generate',
            '--model',
            fixture,
            '--prompt-ids',
            g.prompt.join(','),
            '--max-new-tokens',
            String(g.greedy.length),
            '--temperature',
            '0',
            '--json',
            ...extra,
          );
          expect(r.code).toBe(0);
          expect(JSON.parse(r.out).ids).toEqual(g.greedy);
        }
      }
    });

    it('bad checkpoints and ids are one-line errors with a non-zero exit', async () => {
      const cut = path.join(tmp, 'cut');
      cpSync(fixture, cut, { recursive: true });
      const st = path.join(cut, 'model.safetensors');
      truncateSync(st, statSync(st).size - 1000);
      let r = await yuan('generate', '--model', cut, '--prompt-ids', '1', '--max-new-tokens', '1');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^error: .*model.safetensors: truncated: tensor .* ends at byte \d+ but the file has \d+$/);
      rmSync(st);
      r = await yuan('generate', '--model', cut, '--prompt-ids', '1', '--max-new-tokens', '1');
      expect(r.err).toMatch(/^error: .*no model.safetensors, model-\*.safetensors or index found$/);
      cpSync(path.join(fixture, 'model.safetensors'), st);
      const cfg = JSON.parse(readFileSync(path.join(fixture, 'config.json'), 'utf8'));
      writeFileSync(path.join(cut, 'config.json'), JSON.stringify({ ...cfg, hidden_size: 128 }));
      r = await yuan('generate', '--model', cut, '--prompt-ids', '1', '--max-new-tokens', '1');
      expect(r.err).toMatch(
        /^error: config does not match the weights: model.embed_tokens.weight has shape \[512,64\] but the config implies \[512,128\]$/,
      );
      r = await yuan('generate', '--model', fixture, '--prompt-ids', '1,512', '--max-new-tokens', '1');
      expect(r.code).toBe(1);
      expect(r.err).toBe('error: token id 512 is outside the vocabulary (0..511)');
    });
  },
);

describe('fresh presets from the CLI', () => {
  it("swaps attention plugins with --set and no code change: the trained checkpoint has that plugin's config, weights and logits", async () => {
    const dir = path.join(tmp, 'swap');
    writeFileSync(
      path.join(tmp, 'swap.txt'),
      Array.from({ length: 20 }, (_, i) => `Line ${i} of a tiny corpus.`).join('\n'),
    );
    const prep = await yuan(
      'data',
      'prepare',
      path.join(tmp, 'swap.txt'),
      '--tokenizer',
      'bytes',
      '--output',
      path.join(dir, 'data'),
    );
    expect(prep.code, prep.err).toBe(0);
    const input = path.join(dir, 'in.json');
    writeFileSync(input, JSON.stringify({ input_ids: [[76, 105, 110, 101, 32, 49]] }));
    const saved: Record<string, { names: string[]; logits: number[] }> = {};
    for (const name of ['mha', 'lfa']) {
      const set = [
        `attention.name=${name}`,
        'model.numLayers=1',
        'model.hiddenSize=32',
        'model.ffnSize=64',
        'train.seqLength=16',
        'train.microBatchSize=2',
      ].flatMap((s) => ['--set', s]);
      const out = path.join(dir, name);
      const r = await yuan(
        'train',
        '--preset',
        'tiny-lfa',
        ...set,
        '--data',
        path.join(dir, 'data'),
        '--steps',
        '1',
        '--out',
        out,
        '--json',
      );
      expect(r.code, r.err).toBe(0);
      const ckpt = path.join(
        out,
        readdirSync(out)
          .filter((f) => f.startsWith('checkpoint-'))
          .sort()
          .pop()!,
      );
      expect(JSON.parse(readFileSync(path.join(ckpt, 'config.json'), 'utf8')).yuan.attention.name).toBe(name);
      const st = readFileSync(path.join(ckpt, 'model.safetensors'));
      const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
      const f = await yuan('forward', '--model', out, '--input', input, '--output', path.join(dir, `${name}.json`));
      expect(f.code, f.err).toBe(0);
      saved[name] = {
        names: Object.keys(header).filter((k) => k !== '__metadata__'),
        logits: JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')).logits.flat(2),
      };
    }
    // LFA's localized filter (two causal convolutions + RMSNorm) is in the lfa checkpoint only
    expect(saved.lfa.names.filter((n) => n.includes('lf_gate')).length).toBeGreaterThanOrEqual(5);
    expect(saved.mha.names.filter((n) => n.includes('lf_gate'))).toEqual([]);
    expect(saved.mha.names.every((n) => saved.lfa.names.includes(n))).toBe(true);
    expect(saved.mha.logits).toHaveLength(saved.lfa.logits.length);
    expect(Math.max(...saved.mha.logits.map((v, i) => Math.abs(v - saved.lfa.logits[i])))).toBeGreaterThan(1e-3);
    const g = await yuan(
      'generate',
      '--preset',
      'tiny-lfa',
      '--set',
      'attention.name=mha',
      '--set',
      'model.numLayers=1',
      '--prompt',
      'YUAN',
      '--max-new-tokens',
      '4',
      '--json',
    );
    expect(g.code, g.err).toBe(0);
    expect(typeof JSON.parse(g.out).text).toBe('string');
  });

  it('the built binary exits non-zero with a one-line error on bad input', () => {
    const r = yuanProcess('generate', '--preset', 'nope', '--prompt-ids', '1', '--max-new-tokens', '1');
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/unknown preset plugin "nope"/);
    const u = yuanProcess('generate', '--preset', 'tiny-lfa', '--max-new-tokens', 'ten', '--prompt-ids', '1');
    expect(u.code).toBe(2);
    expect(u.err.trim()).toBe('error: --max-new-tokens "ten" is not an integer >= 0');
  });
});
