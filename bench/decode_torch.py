# PyTorch's side of bench/decode.mjs: transformers' LlamaForCausalLM of the given shape (random weights, tied
# embeddings) in fp32 or bf16 on N threads; greedy decode with the KV cache. Prints one JSON line.
import argparse, json, time, resource
import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
for k in ['vocab', 'hidden', 'layers', 'heads', 'ffn', 'tokens', 'prompt', 'threads']: p.add_argument('--' + k, type=int, required=True)
p.add_argument('--dtype', choices=['fp32', 'bf16'], required=True)
a = p.parse_args()
torch.set_num_threads(a.threads)
dtype = torch.float32 if a.dtype == 'fp32' else torch.bfloat16
cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.heads, max_position_embeddings=4096,
                  rms_norm_eps=1e-6, tie_word_embeddings=True)
t0 = time.time()
torch.set_default_dtype(dtype)
model = LlamaForCausalLM(cfg).eval()
start = time.time() - t0
params = sum(p.numel() for p in model.parameters())
with torch.inference_mode():
    ids = torch.arange(1, a.prompt + 1).unsqueeze(0)
    out = model(input_ids=ids, use_cache=True)
    past = out.past_key_values
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    t1 = time.time()
    c1 = time.process_time()
    for _ in range(a.tokens):
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    dt = time.time() - t1
    cpu = time.process_time() - c1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({'tokensPerSecond': a.tokens / dt, 'tokensPerCpuSecond': a.tokens / cpu, 'bytes': params * (4 if a.dtype == 'fp32' else 2), 'rssMB': rss, 'startSeconds': start}))
