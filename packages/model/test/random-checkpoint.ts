import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '@yuan/core';
import { writeSafetensors } from '@yuan/tensor';
import type { RefConfig, Weights } from './reference.js';

/** Writes a random YUAN 2.0 checkpoint in the Hugging Face layout (as the fixture was made) and returns its weights. */
export async function writeRandomCheckpoint(dir: string, c: RefConfig, seed: number): Promise<Weights> {
  const rng = new Rng(seed);
  const h = c.hidden;
  const w: Weights = new Map();
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { shape, data: Float32Array.from({ length: n }, () => offset + rng.normal() * scale) });
  };
  add('model.embed_tokens.weight', [c.vocab, h], 0.5);
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [h], 0.1, 1);
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) add(`${p}self_attn.${n}.weight`, [h, h], 0.2);
    add(`${p}self_attn.lf_gate.conv1.weight`, [h / 2, h, 2, 1], 0.2);
    add(`${p}self_attn.lf_gate.conv1.bias`, [h / 2], 0.1);
    add(`${p}self_attn.lf_gate.conv2.weight`, [h, h / 2, 2, 1], 0.2);
    add(`${p}self_attn.lf_gate.conv2.bias`, [h], 0.1);
    add(`${p}self_attn.lf_gate.output_layernorm.weight`, [h], 0.1, 1);
    add(`${p}post_attention_layernorm.weight`, [h], 0.1, 1);
    add(`${p}mlp.up_proj.weight`, [c.ffn, h], 0.2);
    add(`${p}mlp.gate_proj.weight`, [c.ffn, h], 0.2);
    add(`${p}mlp.down_proj.weight`, [h, c.ffn], 0.2);
  }
  add('model.norm.weight', [h], 0.1, 1);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'yuan',
      vocab_size: c.vocab,
      hidden_size: h,
      intermediate_size: c.ffn,
      num_hidden_layers: c.layers,
      num_attention_heads: c.heads,
      rms_norm_eps: c.eps,
      max_position_embeddings: 64,
      tie_word_embeddings: true,
    }),
  );
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    [...w].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
  );
  return w;
}
