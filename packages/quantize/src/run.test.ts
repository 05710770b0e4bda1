import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lfaAttention } from '@yuan/attention-lfa';
import { attentionLookup, loadCheckpoint, mhaAttention } from '@yuan/model';
import { ByteTokenizer } from '@yuan/tokenizer';
import { initBackend, openSafetensors, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { calibrationWindows } from './calibration.js';
import { loadQuantizedModel, readQuantizedCheckpoint } from './layout.js';
import { PluginRegistry, type QuantizeGrid, type QuantizerPlugin } from '@yuan/core';
import { dequantizeLinear, GPTQ_DEFAULTS, gptqQuantizer, packLinear, RTN_DEFAULTS, rtnQuantizer } from './plugins.js';
import { quantizeCheckpoint } from './run.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.resolve(here, '../../../../shared/fixtures/yuan2-tiny');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-quantize-'));
const lookup = attentionLookup(
  new PluginRegistry()
    .register(mhaAttention, '@yuan/model')
    .register(lfaAttention as never, '@yuan/attention-lfa')
    .freeze(),
);

/** ‖a − b‖ / ‖a‖ over the logits of the fixture's input ids (float model a, quantized b). */
async function logitGap(a: string, quantized: string): Promise<number> {
  const expected = JSON.parse(readFileSync(path.join(fixture, 'expected.json'), 'utf8'));
  const ref = await loadCheckpoint(a, lookup);
  const q = await loadQuantizedModel(quantized, lookup);
  const ids = tf.tensor2d(expected.input_ids, undefined, 'int32');
  const [x, y] = [ref.forward(ids).logits, q.forward(ids).logits];
  const gap = tf.tidy(() => tf.div(tf.norm(tf.sub(x, y)), tf.norm(x)).dataSync()[0]);
  tf.dispose([ids, x, y]);
  ref.dispose();
  q.dispose();
  console.log('GAP', quantized, gap);
  return gap;
}

describe.skipIf(!existsSync(fixture))('quantizeCheckpoint on the tiny YUAN fixture (needs ../shared)', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it('rtn writes the GPTQ layout: packed linears (q_proj and k_proj apart) and LFA convs, float embeddings, norms, biases', async () => {
    const out = path.join(tmp, 'rtn8');
    const summary = await quantizeCheckpoint({
      model: fixture,
      out,
      quantizer: rtnQuantizer,
      options: { ...RTN_DEFAULTS, bits: 8, groupSize: 32 },
      lookup,
    });
    // per layer: q, k, v, o, up, gate, down and LFA's two convolutions
    expect(summary).toMatchObject({ method: 'rtn', layers: 2, linears: 2 * 9 });
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({
      quant_method: 'gptq',
      bits: 8,
      group_size: 32,
      desc_act: false,
      sym: false,
      checkpoint_format: 'gptq',
      yuan: {
        method: 'rtn',
        weightShapes: {
          'self_attn.lf_gate.conv1.weight': [32, 64, 2, 1],
          'self_attn.lf_gate.conv2.weight': [64, 32, 2, 1],
        },
      },
    });
    expect(config.hidden_size).toBe(64);
    const st = await openSafetensors(path.join(out, 'model.safetensors'));
    const entry = (n: string) => {
      const e = st.entries.get(n);
      return e && [e.dtype, e.shape];
    };
    const p = 'model.layers.1.self_attn.';
    expect(entry(`${p}q_proj.qweight`)).toEqual(['I32', [16, 64]]); // [in·8/32, out]
    expect(entry(`${p}k_proj.qzeros`)).toEqual(['I32', [2, 16]]); // [groups, out·8/32]
    expect(entry(`${p}k_proj.scales`)).toEqual(['F16', [2, 64]]);
    expect(entry(`${p}k_proj.g_idx`)).toEqual(['I32', [64]]);
    expect(entry('model.layers.1.mlp.down_proj.qweight')).toEqual(['I32', [64, 64]]);
    expect(entry('model.layers.1.mlp.gate_proj.scales')).toEqual(['F16', [2, 256]]);
    expect(entry(`${p}lf_gate.conv1.qweight`)).toEqual(['I32', [32, 32]]); // [in·K·8/32, out]
    expect(entry(`${p}lf_gate.conv2.scales`)).toEqual(['F16', [2, 64]]); // 64 in·K columns, groups of 32
    expect(entry(`${p}lf_gate.conv1.weight`)).toBeUndefined();
    for (const f of [
      'model.embed_tokens.weight',
      `${p}lf_gate.conv1.bias`,
      `${p}lf_gate.conv2.bias`,
      'model.layers.1.input_layernorm.weight',
      'model.norm.weight',
    ]) {
      expect(entry(f)?.[0], f).toBe('F32');
    }
    expect(entry(`${p}q_proj.weight`)).toBeUndefined();
    await st.close();
    // a fused parameter is quantized whole and its rows split: each part equals the part quantized on its own
    const source = await openSafetensors(path.join(fixture, 'model.safetensors'));
    const ckpt = await readQuantizedCheckpoint(out);
    for (const part of [`${p}k_proj`, 'model.layers.0.mlp.gate_proj']) {
      const w = await source.read(`${part}.weight`);
      const [rows, cols] = source.entries.get(`${part}.weight`)!.shape;
      const alone = await rtnQuantizer.quantize(
        { name: part, weight: w, rows, cols },
        { ...RTN_DEFAULTS, bits: 8, groupSize: 32 },
      );
      const split = ckpt.linears.get(part)!;
      expect([...split.qweight], part).toEqual([...alone.qweight]);
      expect([...split.qzeros], part).toEqual([...alone.qzeros]);
      expect([...split.scales], part).toEqual([...alone.scales]);
    }
    await source.close();
    // the Conv2d shape comes back from quantization_config.yuan.weightShapes
    expect(ckpt.shapes.get(`${p}lf_gate.conv1.weight`)).toEqual([32, 64, 2, 1]);
    // 8-bit groups of 32: the dequantized model's logits stay close to the float model's
    expect(await logitGap(fixture, out)).toBeLessThan(0.02);
  });

  it('--float-convs keeps the LFA convolutions float (the layout of linears only)', async () => {
    const out = path.join(tmp, 'rtn8-float-convs');
    const summary = await quantizeCheckpoint({
      model: fixture,
      out,
      quantizer: rtnQuantizer,
      options: { ...RTN_DEFAULTS, bits: 8, groupSize: 32 },
      lookup,
      floatConvs: true,
    });
    expect(summary.linears).toBe(2 * 7);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config.yuan.weightShapes).toBeUndefined();
    const st = await openSafetensors(path.join(out, 'model.safetensors'));
    expect(st.entries.get('model.layers.0.self_attn.lf_gate.conv1.weight')?.dtype).toBe('F32');
    expect(st.entries.has('model.layers.0.self_attn.lf_gate.conv1.qweight')).toBe(false);
    await st.close();
    expect(await logitGap(fixture, out)).toBeLessThan(0.02);
  });

  it('gptq (4 bits, act-order) reads its calibration text, records it, and loads back through dequantize', async () => {
    const text = path.join(tmp, 'calib.txt');
    writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(200));
    const calibration = await calibrationWindows(text, new ByteTokenizer(), { samples: 16, seqLength: 32, seed: 1 });
    expect(calibration).toHaveLength(16);
    const out = path.join(tmp, 'gptq4');
    const progress: string[] = [];
    const summary = await quantizeCheckpoint({
      model: fixture,
      out,
      quantizer: gptqQuantizer,
      options: { ...GPTQ_DEFAULTS, groupSize: 32, actOrder: true },
      lookup,
      calibration,
      calibrationInfo: { source: text, samples: 16, seqLength: 32, seed: 1 },
      batchSize: 4,
      onProgress: (p) => progress.push(`${p.done}/${p.total} ${p.name}`),
    });
    expect(summary.linears).toBe(18);
    // forward order inside a layer: LFA's convolutions, its fused QK (filtered input), V, O, then the MLP
    expect(progress.slice(0, 7)).toEqual([
      '1/14 model.layers.0.self_attn.lf_gate.conv1.weight',
      '2/14 model.layers.0.self_attn.lf_gate.conv2.weight',
      '3/14 model.layers.0.self_attn.qk_proj.weight',
      '4/14 model.layers.0.self_attn.v_proj.weight',
      '5/14 model.layers.0.self_attn.o_proj.weight',
      '6/14 model.layers.0.mlp.up_gate_proj.weight',
      '7/14 model.layers.0.mlp.down_proj.weight',
    ]);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({
      bits: 4,
      group_size: 32,
      desc_act: true,
      damp_percent: 0.01,
      yuan: { method: 'gptq', calibration: { samples: 16 } },
    });
    const ckpt = await readQuantizedCheckpoint(out);
    const gIdx = ckpt.linears.get('model.layers.0.mlp.down_proj')!.gIdx;
    expect(gIdx).toHaveLength(256);
    expect([...gIdx].some((g, i) => g !== Math.floor(i / 32))).toBe(true); // act-order: groups follow the permutation
    expect(await logitGap(fixture, out)).toBeLessThan(0.5);
  });

  it('the Hessian of each linear comes from inputs computed with the linears before it already quantized', async () => {
    // a calibrated quantizer plugin that records its Hessians and, when asked, quantizes every weight to 0
    const hessians = new Map<string, Float64Array>();
    const recorder = (zero: boolean): QuantizerPlugin<QuantizeGrid> => ({
      kind: 'quantizer',
      name: 'recorder',
      description: 'test',
      defaults: RTN_DEFAULTS,
      calibrated: true,
      async quantize(l, o) {
        hessians.set(l.name, l.hessian!);
        const groups = Math.ceil(l.cols / 128);
        const q = new Uint8Array(l.rows * l.cols).fill(zero ? 1 : 0);
        return packLinear(
          {
            q,
            scales: new Float32Array(groups * l.rows).fill(1),
            zeros: new Int32Array(groups * l.rows).fill(1),
            gIdx: new Int32Array(l.cols),
            groups,
          },
          l.rows,
          l.cols,
          o,
        );
      },
      dequantize: dequantizeLinear,
    });
    const calibration = Array.from({ length: 4 }, (_, k) =>
      Int32Array.from({ length: 16 }, (_, i) => (k * 37 + i * 11) % 512),
    );
    const energy = (name: string) => hessians.get(name)!.reduce((a, v) => a + Math.abs(v), 0);
    const names = [
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.layers.1.self_attn.o_proj.weight',
      'model.layers.1.mlp.down_proj.weight',
    ];
    await quantizeCheckpoint({
      model: fixture,
      out: path.join(tmp, 'rec'),
      quantizer: recorder(false),
      options: RTN_DEFAULTS,
      lookup,
      calibration,
    });
    for (const n of names) expect(energy(n), n).toBeGreaterThan(0);
    // a convolution's Hessian is over its stacked input [in·K] (kernel 2: the previous and the current position)
    expect(hessians.get('model.layers.0.self_attn.lf_gate.conv1.weight')).toHaveLength(128 * 128);
    expect(energy('model.layers.0.self_attn.lf_gate.conv1.weight')).toBeGreaterThan(0);
    // V quantized to 0 → the attention output, o_proj's input, is 0; up and gate to 0 → down_proj's input is 0
    await quantizeCheckpoint({
      model: fixture,
      out: path.join(tmp, 'rec'),
      quantizer: recorder(true),
      options: RTN_DEFAULTS,
      lookup,
      calibration,
    });
    for (const n of names) expect(energy(n), n).toBe(0);
    expect(energy('model.layers.1.self_attn.v_proj.weight')).toBeGreaterThan(0);
  });

  it('a run leaves no tensors behind', async () => {
    const calibration = Array.from({ length: 4 }, (_, k) =>
      Int32Array.from({ length: 8 }, (_, i) => (k * 8 + i) % 256),
    );
    const run = () =>
      quantizeCheckpoint({
        model: fixture,
        out: path.join(tmp, 'leak'),
        quantizer: gptqQuantizer,
        options: GPTQ_DEFAULTS,
        lookup,
        calibration,
        batchSize: 2,
      });
    await run(); // the first run may fill backend caches
    const before = tf.memory().numTensors;
    await run();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a calibrated quantizer without data, windows longer than the model, and --out on the source', async () => {
    const base = { model: fixture, lookup, options: GPTQ_DEFAULTS };
    await expect(quantizeCheckpoint({ ...base, out: path.join(tmp, 'x'), quantizer: gptqQuantizer })).rejects.toThrow(
      'quantizer gptq needs calibration data (--calibration FILE|DIR)',
    );
    await expect(
      quantizeCheckpoint({
        ...base,
        out: path.join(tmp, 'x'),
        quantizer: gptqQuantizer,
        calibration: [new Int32Array(300)],
      }),
    ).rejects.toThrow("calibration windows of 300 tokens exceed the model's maxPositions 256 (lower --seq)");
    await expect(
      quantizeCheckpoint({ ...base, out: fixture, quantizer: rtnQuantizer, options: RTN_DEFAULTS }),
    ).rejects.toThrow(/is the source model folder/);
  });
});
