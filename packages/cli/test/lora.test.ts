import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { yuan } from './run.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-lora-'));
const data = path.join(tmp, 'data');
const shape = ['--set', 'model.hiddenSize=32', '--set', 'model.numLayers=2', '--set', 'model.ffnSize=64'];
const tiny = [
  '--preset',
  'tiny-lfa',
  ...shape,
  '--set',
  'train.seqLength=16',
  '--set',
  'train.microBatchSize=2',
  '--set',
  'train.warmupSteps=1',
  '--set',
  'train.lr=2e-2',
];

beforeAll(async () => {
  // SFT pairs in YUAN's format: prompt<sep>answer, the loss on the answers
  const lines = Array.from({ length: 40 }, (_, i) => `What comes after ${i}?<sep>${i + 1} comes after ${i}.`);
  writeFileSync(path.join(tmp, 'sft.txt'), lines.join('\n'));
  const r = await yuan(
    'data',
    'prepare',
    '--input',
    path.join(tmp, 'sft.txt'),
    '--format',
    'yuan',
    '--tokenizer',
    'bytes',
    '--output',
    data,
  );
  expect(r.code, r.err).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan train --lora and --peft', () => {
  it('--lora flags train an adapter over the frozen preset; generate, forward and eval take it with --peft', async () => {
    const out = path.join(tmp, 'run');
    const r = await yuan(
      'train',
      ...tiny,
      '--lora-rank',
      '2',
      '--lora-alpha',
      '4',
      '--lora-targets',
      'q_proj,v_proj',
      '--data',
      data,
      '--steps',
      '3',
      '--out',
      out,
      '--seed',
      '5',
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    // rank 2 on q_proj (32 in, 32 out) and v_proj, 2 layers: 2 · 2 · (2·32 + 32·2)
    expect(JSON.parse(r.out)).toMatchObject({ steps: 3, parameters: 512, adapter: 'lora', out });
    expect(r.err).toMatch(
      /lora adapter: 512 trainable parameters over a frozen base of [\d,]+ \(tiny-lfa initialised from seed 5\)/,
    );
    const last = path.join(
      out,
      readdirSync(out)
        .filter((d) => d.startsWith('checkpoint-'))
        .sort()
        .pop()!,
    );
    expect(readdirSync(last)).toContain('adapter_model.safetensors');
    expect(JSON.parse(readFileSync(path.join(last, 'adapter_config.json'), 'utf8'))).toMatchObject({
      peft_type: 'LORA',
      r: 2,
      lora_alpha: 4,
      target_modules: ['q_proj', 'v_proj'],
      base_model_name_or_path: null,
    });

    const gen = (extra: string[]) =>
      yuan(
        'generate',
        '--preset',
        'tiny-lfa',
        ...shape,
        '--seed',
        '5',
        '--prompt-ids',
        '1,2,3',
        '--max-new-tokens',
        '6',
        '--json',
        ...extra,
      );
    const plain = await gen([]);
    const adapted = await gen(['--peft', out]);
    expect(adapted.code, adapted.err).toBe(0);
    expect(JSON.parse(adapted.out).ids).toHaveLength(6);
    expect(plain.code).toBe(0);

    // the adapter's base is a preset, which its folder cannot name: forward asks for --model
    writeFileSync(path.join(tmp, 'in.json'), JSON.stringify({ input_ids: [[1, 2, 3, 4]] }));
    const f = await yuan('forward', '--peft', out, '--input', path.join(tmp, 'in.json'));
    expect(f.code).toBe(2);
    expect(f.err).toMatch(`error: give --model DIR, the base model of the adapter ${out}`);
    const e = await yuan('eval', 'perplexity', '--peft', out, '--samples', path.join(tmp, 'none.jsonl'));
    expect(e.err).toMatch(/--peft \(an adapter over the local model\) only applies with --model/);

    // resume continues the adapter run
    const more = await yuan(
      'train',
      ...tiny,
      '--lora-rank',
      '2',
      '--lora-alpha',
      '4',
      '--lora-targets',
      'q_proj,v_proj',
      '--data',
      data,
      '--steps',
      '4',
      '--out',
      out,
      '--seed',
      '5',
      '--resume',
      out,
      '--json',
    );
    expect(more.code, more.err).toBe(0);
    expect(JSON.parse(more.out)).toMatchObject({ steps: 4, trainedSteps: 1 });
  });

  it('an adapter trained over a checkpoint (--model) is merged into it by yuan adapter merge', async () => {
    const full = path.join(tmp, 'full');
    const t = await yuan('train', ...tiny, '--data', data, '--steps', '1', '--out', full);
    expect(t.code, t.err).toBe(0);
    const base = path.join(
      full,
      readdirSync(full)
        .filter((d) => d.startsWith('checkpoint-'))
        .sort()
        .pop()!,
    );
    const out = path.join(tmp, 'on-checkpoint');
    const r = await yuan(
      'train',
      '--model',
      full,
      '--lora',
      '--lora-targets',
      'all-linear',
      '--recompute',
      'full',
      '--set',
      'train.seqLength=16',
      '--set',
      'train.microBatchSize=2',
      '--set',
      'train.lr=5e-2',
      '--set',
      'train.warmupSteps=1',
      '--data',
      data,
      '--steps',
      '2',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const adapter = path.join(
      out,
      readdirSync(out)
        .filter((d) => d.startsWith('checkpoint-'))
        .sort()
        .pop()!,
    );
    expect(JSON.parse(readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8'))).toMatchObject({
      base_model_name_or_path: path.resolve(base),
      r: 8,
      lora_alpha: 8,
      target_modules: 'all-linear',
    });
    const input = path.join(tmp, 'in2.json');
    writeFileSync(input, JSON.stringify({ input_ids: [[72, 101, 108, 108, 111, 32, 121, 117]] }));
    const logits = async (...args: string[]) => {
      const f = await yuan('forward', ...args, '--input', input);
      expect(f.code, f.err).toBe(0);
      return JSON.parse(f.out).logits[0] as number[][];
    };
    const maxDiff = (a: number[][], b: number[][]) =>
      Math.max(...a.flatMap((row, i) => row.map((x, j) => Math.abs(x - b[i][j]))));
    const withAdapter = await logits('--model', base, '--peft', out);
    // without --model the base is the adapter's base_model_name_or_path
    expect(await logits('--peft', out)).toEqual(withAdapter);
    expect(maxDiff(await logits('--model', base), withAdapter)).toBeGreaterThan(1e-3);
    const merged = path.join(tmp, 'merged');
    const m = await yuan('adapter', 'merge', '--model', base, '--peft', out, '--out', merged);
    expect(m.code, m.err).toBe(0);
    expect(m.err).toMatch(/merged the lora adapter .* into 10 weights of /);
    expect(existsSync(path.join(merged, 'model.safetensors'))).toBe(true);
    expect(maxDiff(await logits('--model', merged), withAdapter)).toBeLessThan(1e-4);
    const bf16 = await yuan(
      'adapter',
      'merge',
      '--model',
      base,
      '--peft',
      out,
      '--out',
      path.join(tmp, 'merged-bf16'),
      '--dtype',
      'bf16',
    );
    expect(bf16.code, bf16.err).toBe(0);
    expect(maxDiff(await logits('--model', path.join(tmp, 'merged-bf16')), withAdapter)).toBeLessThan(0.1);
  });

  it('--weights int8|int4|bf16 trains the adapter over a packed frozen base (QLoRA-style)', async () => {
    for (const format of ['int8', 'int4', 'bf16']) {
      const out = path.join(tmp, `packed-${format}`);
      // int4 recomputes each layer in the backward over the packed base (the engine's test checks equal losses)
      const recompute = format === 'int4' ? ['--recompute', 'full'] : [];
      const r = await yuan(
        'train',
        ...tiny,
        '--lora-rank',
        '2',
        '--lora-targets',
        'all-linear',
        '--weights',
        format,
        ...recompute,
        '--data',
        data,
        '--steps',
        '12',
        '--out',
        out,
        '--json',
      );
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(new RegExp(`lora adapter: [\\d,]+ trainable parameters over a frozen ${format} base of`));
      const losses = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { loss?: number })
        .filter((m) => m.loss !== undefined)
        .map((m) => m.loss!);
      // single steps see different windows of the data, so one step's loss is noisy: the best of the last six must be
      // under the first (the gradients themselves are checked against the dequantized base in packed-base.test.ts)
      expect(losses).toHaveLength(12);
      expect(Math.min(...losses.slice(6)), `${format}: the adapter learns over the packed base`).toBeLessThan(
        losses[0],
      );
    }
  });

  it('bad adapter settings stop before training with one line naming them', async () => {
    const run = (...extra: string[]) =>
      yuan('train', ...tiny, '--data', data, '--steps', '1', '--out', path.join(tmp, 'bad'), ...extra);
    const expectError = async (args: string[], code: number, message: string | RegExp) => {
      const r = await run(...args);
      expect(r.code, r.err).toBe(code);
      expect(r.err.split('\n')[0]).toMatch(message);
    };
    await expectError(['--lora-rank', '0'], 2, 'error: --lora-rank "0" is not an integer >= 1');
    await expectError(
      ['--lora-targets', 'x_proj'],
      1,
      /invalid config: adapter\.options\.targets: "x_proj" matches no linear layer of this model \(its linear layers: q_proj, k_proj, v_proj, o_proj, up_proj, gate_proj, down_proj\)/,
    );
    await expectError(
      ['--lora', '--set', 'adapter.options.dropout=2'],
      1,
      /invalid config: adapter\.options\.dropout = 2; expected a number >= 0 <= 0\.999999/,
    );
    await expectError(['--lora', '--pp', '2'], 2, /--pp: an adapter \(LoRA\) run trains in one process/);
    await expectError(
      ['--weights', 'int8'],
      2,
      /--weights int8 is the frozen base's format of an adapter run: add --lora/,
    );
    await expectError(
      ['--lora', '--recompute', 'stage'],
      2,
      /--recompute "stage": an adapter run takes none \(keep every activation\) or full/,
    );
    await expectError(
      ['--set', 'adapter.name=ia3', '--lora-rank', '2'],
      2,
      /--lora-rank sets a lora adapter, but the config's adapter is "ia3"/,
    );
    await expectError(['--set', 'adapter.name=ia3'], 1, /unknown adapter plugin "ia3" \(registered: lora\)/);
    await expectError(
      ['--model', path.join(tmp, 'nowhere'), '--lora'],
      2,
      /--model \(the base checkpoint, whose config\.json gives the model\) and --preset exclude each other/,
    );
    const missing = await yuan(
      'train',
      '--model',
      path.join(tmp, 'nowhere'),
      '--lora',
      '--data',
      data,
      '--steps',
      '1',
      '--out',
      path.join(tmp, 'bad'),
    );
    expect(missing.err).toMatch(`error: model folder not found: ${path.join(tmp, 'nowhere')}`);
    const bare = await yuan(
      'train',
      '--model',
      path.join(tmp, 'nowhere'),
      '--data',
      data,
      '--steps',
      '1',
      '--out',
      path.join(tmp, 'bad'),
    );
    expect(bare.err).toMatch(/--model trains an adapter over the base: add --lora/);
    expect(existsSync(path.join(tmp, 'bad'))).toBe(false);
    const m = await yuan('adapter', 'merge', '--model', path.join(tmp, 'x'), '--out', path.join(tmp, 'y'));
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/missing --peft/);
  });
});
