import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { PluginRegistry } from '@yuan/core';
import { attentionLookup, generateTokens, mhaAttention } from '@yuan/model';
import { loadQuantizedModel, readQuantizedCheckpoint } from '@yuan/quantize';
import { tf } from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import { shared, yuan, yuanProcess } from './run.js';

const fixture = path.join(shared, 'fixtures/yuan2-tiny');
const native = existsSync(path.resolve(__dirname, '../../tensor-native/build/Release/yuan_native.node'));
const wikitext = path.join(shared, 'datasets/wikitext-2/valid.txt');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-quantize-cli-'));
const lookup = attentionLookup(
  new PluginRegistry()
    .register(mhaAttention, '@yuan/model')
    .register(lfaAttention as never, '@yuan/attention-lfa')
    .freeze(),
);

describe.skipIf(!existsSync(fixture))('yuan quantize on the tiny YUAN fixture (needs ../shared)', () => {
  const text = path.join(tmp, 'calibration.txt');
  writeFileSync(
    text,
    existsSync(wikitext)
      ? readFileSync(wikitext, 'utf8').slice(0, 40_000)
      : 'A line of calibration text.\n'.repeat(2000),
  );

  it('--method rtn --bits 8 writes the GPTQ layout that loads back; --json gives the summary', async () => {
    const out = path.join(tmp, 'rtn8');
    const r = await yuan(
      'quantize',
      '--model',
      fixture,
      '--method',
      'rtn',
      '--bits',
      '8',
      '--group=-1',
      '--float-convs',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out);
    expect(summary).toMatchObject({
      method: 'rtn',
      linears: 14,
      quantizedParameters: 131072,
      options: { bits: 8, groupSize: -1, sym: false },
    });
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({
      quant_method: 'gptq',
      bits: 8,
      group_size: -1,
      checkpoint_format: 'gptq',
      yuan: { method: 'rtn' },
    });
    // --float-convs: the layout of linears only, LFA's convolutions stay float
    expect(config.quantization_config.yuan.weightShapes).toBeUndefined();
    const model = await loadQuantizedModel(out, lookup);
    expect(model.config.model.hiddenSize).toBe(64);
    model.dispose();
  });

  it('--method gptq reads a text file (--tokenizer bytes) or a packed data folder, and records the calibration', async () => {
    const out = path.join(tmp, 'gptq4');
    let r = await yuan(
      'quantize',
      '--model',
      fixture,
      '--method',
      'gptq',
      '--group',
      '32',
      '--act-order',
      '--calibration',
      text,
      '--tokenizer',
      'bytes',
      '--samples',
      '8',
      '--seq',
      '64',
      '--out',
      out,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^quantized 18 linears \(147,456 parameters; 33,408 stay float\) with gptq 4-bit, group 32, act-order in [\d.]+ s: model.safetensors [\d.]+ MB \(float32: 0.7 MB\); output in /,
    );
    expect(r.err).toMatch(/^14\/14 layer 2\/2 mlp.down_proj.weight/m);
    let ckpt = await readQuantizedCheckpoint(out);
    expect(ckpt.hf.quantization_config).toMatchObject({
      bits: 4,
      group_size: 32,
      desc_act: true,
      yuan: { method: 'gptq', calibration: { samples: 8, seqLength: 64, tokenizer: 'bytes' } },
    });
    expect(ckpt.linears.get('model.layers.0.self_attn.k_proj')?.bits).toBe(4);

    const data = path.join(tmp, 'data');
    r = await yuan('data', 'prepare', text, '--tokenizer', 'bytes', '--output', data);
    expect(r.code, r.err).toBe(0);
    r = await yuan(
      'quantize',
      '--model',
      fixture,
      '--method',
      'gptq',
      '--calibration',
      data,
      '--samples',
      '4',
      '--seq',
      '32',
      '--out',
      out,
    );
    expect(r.code, r.err).toBe(0);
    ckpt = await readQuantizedCheckpoint(out);
    expect(ckpt.hf.quantization_config).toMatchObject({
      group_size: 128,
      desc_act: false,
      yuan: { calibration: { source: path.resolve(data), samples: 4, seqLength: 32 } },
    });
  });

  it('yuan generate opens the quantized folder like any model: the greedy ids of the dequantized model', async () => {
    const out = path.join(tmp, 'gptq4-ao');
    let r = await yuan(
      'quantize',
      '--model',
      fixture,
      '--method',
      'gptq',
      '--group',
      '32',
      '--act-order',
      '--calibration',
      text,
      '--tokenizer',
      'bytes',
      '--samples',
      '8',
      '--seq',
      '64',
      '--out',
      out,
    );
    expect(r.code, r.err).toBe(0);
    const model = await loadQuantizedModel(out, lookup);
    const expected = [...generateTokens(model, [5, 77, 300, 12, 9], { maxNewTokens: 12 })];
    model.dispose();
    // the cpu backend computes with the dequantized weights (the native kernels use their own arithmetic); a child
    // process, since one process keeps the backend it started with
    r = yuanProcess(
      'generate',
      '--model',
      out,
      '--prompt-ids',
      '5,77,300,12,9',
      '--max-new-tokens',
      '12',
      '--json',
      '--backend',
      'cpu',
    );
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).ids).toEqual(expected);
  });

  // The native backend keeps the GPTQ weights packed and, below 32 rows, multiplies them with activations quantized to
  // int8 codes per chunk of 32 inputs (W4A8): its logits differ from the dequantized model's by up to 0.15 on this
  // fixture (measured 0.07–0.11 for rtn, gptq and gptq act-order alike), so greedy ids agree until the reference's top
  // two logits come within that. Act-order is no exception: its rows are regrouped at load (perm) and feed the same
  // kernel; the act-order run of the earlier note diverged at a step whose reference margin (0.013) was below it.
  it.skipIf(!native)(
    'on the native backend (packed int4, act-order): forward logits within 0.15 of the dequantized model, and greedy ids equal until a near-tie',
    async () => {
      const out = path.join(tmp, 'gptq4-ao-native');
      let r = await yuan(
        'quantize',
        '--model',
        fixture,
        '--method',
        'gptq',
        '--group',
        '32',
        '--act-order',
        '--calibration',
        text,
        '--tokenizer',
        'bytes',
        '--samples',
        '8',
        '--seq',
        '64',
        '--out',
        out,
      );
      expect(r.code, r.err).toBe(0);
      const tolerance = 0.15;
      const prompt = [5, 77, 300, 12, 9];
      const model = await loadQuantizedModel(out, lookup);
      // 15 positions: below 32 rows the forward runs the same W4A8 kernel as each decode step
      const expected = [...generateTokens(model, prompt, { maxNewTokens: 10 })];
      const sequence = [...prompt, ...expected];
      const vocab = model.config.model.vocabSize;
      const logits = tf.tidy(
        () => model.forward(tf.tensor2d([sequence], undefined, 'int32')).logits.dataSync() as Float32Array,
      );
      model.dispose();
      // the reference's top-1 − top-2 margin at each generated step
      const margins = expected.map((_, i) => {
        const t = prompt.length - 1 + i;
        const row = [...logits.subarray(t * vocab, (t + 1) * vocab)].sort((a, b) => b - a);
        return row[0] - row[1];
      });
      writeFileSync(path.join(tmp, 'in.json'), JSON.stringify({ input_ids: [sequence] }));
      r = yuanProcess(
        'forward',
        '--model',
        out,
        '--input',
        path.join(tmp, 'in.json'),
        '--output',
        path.join(tmp, 'out.json'),
        '--backend',
        'native',
      );
      expect(r.code, r.err).toBe(0);
      const native = (
        JSON.parse(readFileSync(path.join(tmp, 'out.json'), 'utf8')) as { logits: number[][][] }
      ).logits[0].flat();
      let worst = 0;
      native.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - logits[i]))));
      expect(worst).toBeLessThan(tolerance);
      r = yuanProcess(
        'generate',
        '--model',
        out,
        '--prompt-ids',
        prompt.join(','),
        '--max-new-tokens',
        '10',
        '--json',
        '--backend',
        'native',
      );
      expect(r.code, r.err).toBe(0);
      // the first step where the ids differ (if any) is one where a 0.15 error can flip the choice
      const ids = JSON.parse(r.out).ids as number[];
      expect(ids).toHaveLength(expected.length);
      const first = ids.findIndex((id, i) => id !== expected[i]);
      if (first >= 0) expect(margins[first]).toBeLessThanOrEqual(2 * tolerance);
    },
  );

  it('bad flags are one-line errors', async () => {
    const out = path.join(tmp, 'bad');
    const cases: [string[], RegExp][] = [
      [['--method', 'rtn', '--bits', '3'], /^error: --bits "3" must be 4 or 8$/],
      [['--method', 'rtn', '--group', '0'], /^error: --group "0" must be a positive integer, or -1 \/ channel/],
      [['--method', 'awq'], /^error: unknown quantizer plugin "awq" \(registered: gptq, rtn\)$/],
      [['--method', 'rtn', '--act-order'], /^error: --act-order applies to gptq, not to quantizer rtn$/],
      [
        ['--method', 'rtn', '--calibration', text],
        /^error: --calibration is calibration data; quantizer rtn uses none$/,
      ],
      [['--method', 'gptq'], /^error: quantizer gptq needs calibration data: give --calibration FILE.txt\|DATA_DIR$/],
      [
        ['--method', 'gptq', '--calibration', text],
        /^error: calibration text .* needs a tokenizer: the model names none, give --tokenizer FILE.model\|bytes$/,
      ],
      [
        ['--method', 'gptq', '--calibration', text, '--tokenizer', 'bytes', '--seq', '4096'],
        /^error: calibration windows of 4096 tokens exceed the model's maxPositions 256 \(lower --seq\)$/,
      ],
      [
        ['--method', 'gptq', '--calibration', path.join(tmp, 'none.txt'), '--tokenizer', 'bytes'],
        /^error: calibration file not found: /,
      ],
      [
        ['--method', 'gptq', '--calibration', text, '--tokenizer', 'bytes', '--samples', 'many'],
        /^error: --samples "many" is not an integer >= 1$/,
      ],
      [
        ['--method', 'rtn', '--option', 'damp=0.1'],
        /^error: quantizer rtn: unknown option "damp" \(options: bits, groupSize, sym\)$/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await yuan('quantize', '--model', fixture, ...args, '--out', out);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.err.split('\n')[0], args.join(' ')).toMatch(message);
      expect(r.err.split('\n'), args.join(' ')).toHaveLength(1);
    }
    let r = await yuan('quantize', '--model', fixture, '--method', 'rtn');
    expect(r.err.split('\n')[0]).toBe('error: missing --out');
    r = await yuan('quantize', '--model', path.join(tmp, 'nowhere'), '--method', 'rtn', '--out', out);
    expect(r.err).toBe(`error: model folder not found: ${path.join(tmp, 'nowhere')}`);
    r = await yuan('quantize', '--model', fixture, '--method', 'rtn', '--out', fixture);
    expect(r.err).toMatch(/^error: --out .* is the source model folder; write the quantized model elsewhere$/);
    expect(existsSync(out)).toBe(false);
  });
});
