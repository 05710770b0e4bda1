# Writes a LLaMA GGUF of a given shape with random weights for bench/decode.mjs (llama.cpp's side of the comparison):
# F16, Q8_0 or Q4_0 linear weights (and token embedding, tied to the output), F32 norms, a placeholder SentencePiece
# vocabulary (<unk>, <s>, </s>, 256 byte tokens, then t<i>). Blocks are written directly in ggml's layout
# (Q8_0: fp16 scale + 32 int8; Q4_0: fp16 scale + 16 bytes of nibbles), so nothing is quantized here.
import argparse
import numpy as np
import gguf

p = argparse.ArgumentParser()
p.add_argument('out'); p.add_argument('--type', choices=['F16', 'Q8_0', 'Q4_0'], required=True)
p.add_argument('--vocab', type=int, required=True); p.add_argument('--hidden', type=int, required=True)
p.add_argument('--layers', type=int, required=True); p.add_argument('--heads', type=int, required=True)
p.add_argument('--ffn', type=int, required=True); p.add_argument('--context', type=int, default=4096)
a = p.parse_args()
rng = np.random.default_rng(0)
qt = {'F16': gguf.GGMLQuantizationType.F16, 'Q8_0': gguf.GGMLQuantizationType.Q8_0, 'Q4_0': gguf.GGMLQuantizationType.Q4_0}[a.type]

def matrix(rows, cols, std=0.02):
    if a.type == 'F16':
        return (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float16), None
    per, size = (32, 34) if a.type == 'Q8_0' else (32, 18)
    blocks = np.empty((rows, cols // per, size), dtype=np.uint8)
    scale = np.float16(std / (64 if a.type == 'Q8_0' else 4))
    blocks[:, :, 0:2] = np.frombuffer(scale.tobytes(), dtype=np.uint8)
    quants = rng.integers(0, 256, size=(rows, cols // per, size - 2), dtype=np.uint8)
    if a.type == 'Q8_0':
        quants = (quants.view(np.int8) // 2).view(np.uint8)  # ±64
    blocks[:, :, 2:] = quants
    return blocks.reshape(rows, -1), qt

w = gguf.GGUFWriter(a.out, 'llama')
w.add_context_length(a.context); w.add_embedding_length(a.hidden); w.add_block_count(a.layers)
w.add_feed_forward_length(a.ffn); w.add_head_count(a.heads); w.add_head_count_kv(a.heads)
w.add_rope_dimension_count(a.hidden // a.heads); w.add_layer_norm_rms_eps(1e-6); w.add_rope_freq_base(10000.0)
w.add_file_type({'F16': 1, 'Q8_0': 7, 'Q4_0': 2}[a.type])
tokens = ['<unk>', '<s>', '</s>'] + [f'<0x{i:02X}>' for i in range(256)]
tokens += [f't{i}' for i in range(a.vocab - len(tokens))]
types = [2, 3, 3] + [6] * 256 + [1] * (a.vocab - 259)
w.add_tokenizer_model('llama'); w.add_token_list(tokens); w.add_token_scores([0.0] * a.vocab); w.add_token_types(types)
w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)

def add(name, arr, raw):
    if raw is None: w.add_tensor(name, arr)
    else: w.add_tensor(name, arr, raw_dtype=raw)

add('token_embd.weight', *matrix(a.vocab, a.hidden))
add('output_norm.weight', np.ones(a.hidden, dtype=np.float32), None)
for l in range(a.layers):
    b = f'blk.{l}.'
    add(b + 'attn_norm.weight', np.ones(a.hidden, dtype=np.float32), None)
    add(b + 'ffn_norm.weight', np.ones(a.hidden, dtype=np.float32), None)
    for n in ['attn_q', 'attn_k', 'attn_v', 'attn_output']: add(b + n + '.weight', *matrix(a.hidden, a.hidden))
    add(b + 'ffn_gate.weight', *matrix(a.ffn, a.hidden)); add(b + 'ffn_up.weight', *matrix(a.ffn, a.hidden))
    add(b + 'ffn_down.weight', *matrix(a.hidden, a.ffn))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
