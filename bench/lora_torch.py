"""The baseline of bench/lora.mjs: LoRA fine-tuning steps of a LLaMA of the given shape with PyTorch + Hugging Face peft.

transformers' LlamaForCausalLM (tied embeddings, random init, fp32 base) wrapped by peft's get_peft_model with a
LoraConfig (rank, alpha, dropout, target modules); AdamW (torch.optim, β 0.9/0.95, eps 1e-8, weight decay 0.1) over the
trainable parameters only; each step is forward + backward + optimizer step on `--batch` sequences of `--seq` random
tokens (with --checkpointing, transformers' gradient checkpointing recomputes each layer in the backward). Prints one JSON line: parameter counts, the wall and CPU seconds of each step (the first is a warm-up) and the peak
resident memory of this process (ru_maxrss), with the torch, transformers and peft versions.
"""

import argparse
import json
import resource
import sys
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--vocab", type=int, required=True)
p.add_argument("--hidden", type=int, required=True)
p.add_argument("--layers", type=int, required=True)
p.add_argument("--heads", type=int, required=True)
p.add_argument("--ffn", type=int, required=True)
p.add_argument("--seq", type=int, default=512)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--rank", type=int, default=16)
p.add_argument("--alpha", type=float, default=32)
p.add_argument("--dropout", type=float, default=0.05)
p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--base-dtype", choices=["fp32", "bf16"], default="fp32", help="the frozen base's dtype (LoRA weights stay fp32)")
p.add_argument("--checkpointing", action="store_true", help="transformers' gradient checkpointing (recompute each layer)")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

import peft  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

config = LlamaConfig(
    vocab_size=args.vocab,
    hidden_size=args.hidden,
    intermediate_size=args.ffn,
    num_hidden_layers=args.layers,
    num_attention_heads=args.heads,
    num_key_value_heads=args.heads,
    max_position_embeddings=max(args.seq, 4096),
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
with torch.no_grad():
    base = LlamaForCausalLM(config).float()
    if args.base_dtype == "bf16":
        base = base.to(torch.bfloat16)
base_params = sum(t.numel() for t in base.parameters())
model = get_peft_model(
    base,
    LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=args.targets.split(","), task_type="CAUSAL_LM"),
)
if args.base_dtype == "bf16":
    for t in model.parameters():
        if t.requires_grad:
            t.data = t.data.float()  # the adapter trains in fp32 over the bf16 base
if args.checkpointing:
    base.gradient_checkpointing_enable()
    base.enable_input_require_grads()  # the frozen embedding's output must carry a gradient into the checkpointed layers
model.train()
trainable = [t for t in model.parameters() if t.requires_grad]
opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
gen = torch.Generator().manual_seed(1)
ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=gen)
seconds, cpu, losses = [], [], []
for _ in range(args.steps + 1):
    t0 = time.perf_counter()
    c0 = time.process_time()
    logits = model(input_ids=ids[:, :-1], use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, args.vocab).float(), ids[:, 1:].reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(float(loss.detach()))
    seconds.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    del logits, loss
json.dump(
    {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "baseParameters": base_params,
        "trainable": sum(t.numel() for t in trainable),
        "seconds": seconds,
        "cpuSeconds": cpu,
        "losses": losses,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    },
    sys.stdout,
)
print()
