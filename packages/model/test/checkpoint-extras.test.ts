import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lfaAttention } from '@yuan/attention-lfa';
import { resolveConfig } from '@yuan/core';
import { initBackend, tf } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint, YuanModel } from '../src/index.js';
import { attentionNamed } from './attention.js';

const lookup = attentionNamed;
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-ckpt-extras-'));
const config = resolveConfig({
  model: { vocabSize: 48, hiddenSize: 16, numLayers: 2, numHeads: 2, ffnSize: 32, maxPositions: 32 },
});

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The header and data section of a safetensors file, read byte by byte here (not with the production reader). */
function split(file: string): { header: Record<string, Entry>; data: Buffer } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

/** Writes a safetensors file byte by byte from a header and a data section. */
function join(file: string, header: Record<string, unknown>, data: Buffer): void {
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeFileSync(file, Buffer.concat([len, text, data]));
}

/** A copy of the good checkpoint whose model.safetensors has `extra` tensors appended (raw bytes) and `edit` applied. */
function variant(
  name: string,
  extra: Array<[string, string, number[], Uint8Array]>,
  edit?: (h: Record<string, Entry>) => void,
): string {
  const dir = path.join(tmp, name);
  cpSync(good, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const { header, data } = split(file);
  const parts = [data];
  let at = data.length;
  for (const [tensor, dtype, shape, bytes] of extra) {
    header[tensor] = { dtype, shape, data_offsets: [at, at + bytes.length] };
    parts.push(Buffer.from(bytes));
    at += bytes.length;
  }
  edit?.(header);
  join(file, header, Buffer.concat(parts));
  return dir;
}

let good: string;
let model: YuanModel;
const ids = (): tf.Tensor2D => tf.tensor2d([[1, 5, 9, 2]], undefined, 'int32');

beforeAll(async () => {
  await initBackend('cpu');
  model = YuanModel.init(config, lfaAttention as never, 5);
  good = path.join(tmp, 'good');
  await saveCheckpoint(good, model);
});

const f32 = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).fill(0.25).buffer);

describe('checkpoint tensors the model does not use are ignored and named, as Hugging Face does', () => {
  it('loads past a 0-rank scalar, a 0-size tensor, an I64 buffer and an unknown dtype', async () => {
    const dir = variant('extras', [
      ['logit_scale', 'F32', [], f32(1)],
      ['model.empty_buffer', 'F32', [0], new Uint8Array(0)],
      ['model.position_ids', 'I64', [1, 4], new Uint8Array(new BigInt64Array([0n, 1n, 2n, 3n]).buffer)],
      ['model.quantized_state', 'Q4_K', [8], new Uint8Array(5)],
    ]);
    const notes: string[] = [];
    let names: readonly string[] = [];
    const back = await loadCheckpoint(
      dir,
      lookup,
      {},
      { onIgnored: (note, ignored) => (notes.push(note), (names = ignored)) },
    );
    expect(names).toEqual(['logit_scale', 'model.empty_buffer', 'model.position_ids', 'model.quantized_state']);
    expect(notes).toEqual([
      `${dir}: ignored 4 tensors the model does not use: logit_scale, model.empty_buffer, model.position_ids, model.quantized_state`,
    ]);
    expect(back.forward(ids()).logits.arraySync()).toEqual(model.forward(ids()).logits.arraySync());
    back.dispose();
  });

  it('names the layers a smaller config leaves out instead of refusing them', async () => {
    const dir = path.join(tmp, 'fewer-layers');
    cpSync(good, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    let names: readonly string[] = [];
    const back = await loadCheckpoint(dir, lookup, {}, { onIgnored: (_, ignored) => (names = ignored) });
    expect(back.config.model.numLayers).toBe(1);
    expect(names.length).toBeGreaterThan(0);
    expect(names.every((n) => n.startsWith('model.layers.1.'))).toBe(true);
    back.dispose();
  });
});

describe('the tied head and RoPE buffers an export writes for Hugging Face loaders', () => {
  const head = 'lm_head.weight';
  const invFreq = (l: number): string => `model.layers.${l}.self_attn.rotary_emb.inv_freq`;

  it("load without a note, and a folder without them (the PyTorch fixture's layout) loads to the same logits", async () => {
    const { header } = split(path.join(good, 'model.safetensors'));
    expect(Object.keys(header)).toEqual(expect.arrayContaining([head, invFreq(0), invFreq(1)]));
    const bare = variant('bare', [], (h) => [head, invFreq(0), invFreq(1)].forEach((n) => delete h[n]));
    for (const dir of [good, bare]) {
      const notes: string[] = [];
      const back = await loadCheckpoint(dir, lookup, {}, { onIgnored: (note) => notes.push(note) });
      expect(notes).toEqual([]);
      expect(back.forward(ids()).logits.arraySync()).toEqual(model.forward(ids()).logits.arraySync());
      back.dispose();
    }
  });

  it('an untied head and RoPE buffers of another base are one-line errors, not silently replaced', async () => {
    const untied = variant('untied', [[head, 'F32', [48, 16], f32(48 * 16)]]);
    const e1 = await loadCheckpoint(untied, lookup).catch((e: Error) => e);
    expect((e1 as Error).message).toMatch(
      new RegExp(
        `^${path.join(untied, 'model.safetensors')}: lm_head.weight differs from model.embed_tokens.weight in \\d+ values \\(max \\|difference\\| [0-9.e-]+\\); yuan ties the output head to the embeddings and cannot load an untied head$`,
      ),
    );
    const base = 500000;
    const other = Float32Array.from({ length: 4 }, (_, i) => 1 / Math.pow(base, (2 * i) / 8));
    const rope = variant('rope-base', [[invFreq(1), 'F32', [4], new Uint8Array(other.buffer)]]);
    const e2 = await loadCheckpoint(rope, lookup).catch((e: Error) => e);
    expect((e2 as Error).message).toBe(
      `config does not match the weights: ${invFreq(1)} is not RoPE with rope_theta 10000 (it implies a base of 500000); set rope_theta in config.json to the base the model was trained with`,
    );
  });
});

describe('what the model needs stays strict: one-line errors naming the file and the tensor', () => {
  const needed = 'model.layers.0.mlp.down_proj.weight';

  async function failure(dir: string): Promise<string> {
    const e = await loadCheckpoint(dir, lookup).then(
      (m) => (m.dispose(), undefined),
      (err: unknown) => err as Error,
    );
    expect(e, 'the checkpoint should be refused').toBeInstanceOf(Error);
    expect(e!.name).toBe('YuanError');
    expect(e!.message).not.toContain('\n');
    return e!.message;
  }

  it('a missing needed tensor', async () => {
    const dir = variant('missing', [], (h) => delete h[needed]);
    expect(await failure(dir)).toBe(
      `config does not match the weights: ${dir} has no tensor ${needed} (expected shape [16,32])`,
    );
  });

  it('a needed tensor of a dtype yuan does not read (I32, unknown)', async () => {
    for (const dtype of ['I32', 'X7']) {
      const dir = variant(`needed-${dtype}`, [], (h) => (h[needed].dtype = dtype));
      expect(await failure(dir)).toBe(
        `${path.join(dir, 'model.safetensors')}: tensor ${needed} has dtype ${dtype}; yuan reads weights as F32, F16 or BF16`,
      );
    }
  });

  it('a needed tensor without data_offsets, with overlapping offsets, or with a shape that does not match its bytes', async () => {
    const file = (dir: string): string => path.join(dir, 'model.safetensors');
    const noOffsets = variant('no-offsets', [], (h) => delete (h[needed] as Partial<Entry>).data_offsets);
    expect(await failure(noOffsets)).toBe(
      `${file(noOffsets)}: header entry for tensor "${needed}" has no data_offsets`,
    );
    const overlap = variant(
      'overlap',
      [['model.alias', 'F32', [2], f32(2)]],
      (h) => (h['model.alias'].data_offsets = [0, 8]),
    );
    expect(await failure(overlap)).toMatch(
      new RegExp(`^${file(overlap)}: tensors .* and model.alias \\[0,8\\] overlap in the data section$`),
    );
    const shape = variant('bad-shape', [], (h) => (h[needed].shape = [16, 31]));
    expect(await failure(shape)).toMatch(
      new RegExp(`^${file(shape)}: tensor ${needed}: shape \\[16,31\\] F32 needs 1984 bytes but data_offsets`),
    );
  });
});
