"""Loads a Hugging Face YUAN 2.0 folder the way current transformers does and writes its logits as JSON.

Used by hf-from-pretrained.test.ts to check that the folders yuan exports give `yuan forward`'s logits through
`from_pretrained`. The model here is our own small PyTorch YUAN 2.0, written from ../shared/fixtures/README.md and
../shared/YUAN2-SPEC.md as a transformers `PreTrainedModel`, so transformers' real loading and weight-tying code runs:

- LFA: two causal convolutions over time, Conv2d(H -> H/2) and Conv2d(H/2 -> H) with kernel (2, 1) and padding (1, 0),
  the first T outputs kept, then RMSNorm of (filtered + input). Q and K come from the filtered states, V from the
  unfiltered ones.
- Fused QK: [q_proj(z) | k_proj(z)] is viewed per head as [B, T, heads, 2d] and halved, so head h's query and key
  are not rows h*d.. of q_proj and k_proj.
- RoPE rotate-half with positions from 0, from a persistent `rotary_emb.inv_freq` buffer built with base 10000 whatever
  rope_theta says (as YUAN's file does); a checkpoint's inv_freq replaces it when loading.
- MLP down(gate(x) * silu(up(x))); pre-norm residual blocks; final RMSNorm; `lm_head`.

Variants (--variants, comma-separated):
- `yuan`: declares no `_tied_weights_keys`, as YUAN's modeling file (yuan_hf_model.py) does. transformers 5 then never
  ties `lm_head` to the embeddings, so a folder without `lm_head.weight` loads with a random head.
- `declared`: declares `_tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}`, as transformers' own
  models do (tied when config.json says tie_word_embeddings; when both tensors are present they must be equal).
- `official`: the `YuanForCausalLM` of the file given with --official (a copy of YUAN's yuan_hf_model.py; the folder
  beside it is put on sys.path for its configuration_yuan import, and flash_attn, which it imports but does not use
  with use_flash_attention false, is stubbed while it is imported when it is not installed).

Usage: python hf_yuan_loader.py --model DIR --input IN.json --output OUT.json [--variants yuan,declared] [--official PATH]
IN.json is {"input_ids": [[...], ...]}; OUT.json is {"transformers": version, "variants": {name: {"logits": [B][T][V],
"missing": [...], "unexpected": [...], "tied": bool}}}; a failure of the official file is that variant's {"error": "..."}.
Other errors go to stderr with a non-zero exit.
"""

import argparse
import importlib.util
import json
import math
import os
import sys
import types

import torch
import transformers
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel


class TinyYuanConfig(PretrainedConfig):
    """The config.json keys this model reads (others, such as yuan's own `yuan` section, are kept as attributes)."""

    model_type = "yuan"

    def __init__(
        self,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        rms_norm_eps=1e-6,
        max_position_embeddings=256,
        initializer_range=0.02,
        tie_word_embeddings=True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.rms_norm_eps = rms_norm_eps
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class LocalizedFiltering(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.conv1 = nn.Conv2d(hidden, hidden // 2, (2, 1), padding=(1, 0))
        self.conv2 = nn.Conv2d(hidden // 2, hidden, (2, 1), padding=(1, 0))
        self.output_layernorm = RMSNorm(hidden, eps)

    def forward(self, x):  # [B, T, H]
        steps = x.shape[1]
        y = x.transpose(1, 2).unsqueeze(-1)  # [B, H, T, 1]: time is the conv's height
        y = self.conv1(y)[:, :, :steps]  # one zero row on each side of time; the first T outputs are causal
        y = self.conv2(y)[:, :, :steps]
        return self.output_layernorm(y.squeeze(-1).transpose(1, 2) + x)


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim):
        super().__init__()
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq)  # persistent: it is a checkpoint entry

    def forward(self, steps):
        angles = torch.arange(steps, dtype=torch.float32)[:, None] * self.inv_freq.float()[None, :]
        full = torch.cat([angles, angles], dim=-1)  # [T, d]
        return full.cos(), full.sin()


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.head_dim = hidden // self.heads
        self.lf_gate = LocalizedFiltering(hidden, config.rms_norm_eps)
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.rotary_emb = RotaryEmbedding(self.head_dim)

    def forward(self, x):
        b, t, hidden = x.shape
        n, d = self.heads, self.head_dim
        z = self.lf_gate(x)
        qk = torch.cat([self.q_proj(z), self.k_proj(z)], dim=-1).view(b, t, n, 2 * d)
        q, k = qk[..., :d].transpose(1, 2), qk[..., d:].transpose(1, 2)  # [B, n, T, d]
        v = self.v_proj(x).view(b, t, n, d).transpose(1, 2)
        cos, sin = self.rotary_emb(t)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")).float(), dim=-1).to(v.dtype)
        return self.o_proj((weights @ v).transpose(1, 2).reshape(b, t, hidden))


class Mlp(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(self.gate_proj(x) * nn.functional.silu(self.up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = Mlp(config)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyYuanPreTrainedModel(PreTrainedModel):
    config_class = TinyYuanConfig
    base_model_prefix = "model"

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)


class TinyYuanModel(TinyYuanPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class YuanForCausalLM(TinyYuanPreTrainedModel):
    """Declares no tied weights, like YUAN's modeling file: only get/set_output_embeddings name the head."""

    def __init__(self, config):
        super().__init__(config)
        self.model = TinyYuanModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids, **_):
        return types.SimpleNamespace(logits=self.lm_head(self.model(input_ids)))


class DeclaredTiedYuanForCausalLM(YuanForCausalLM):
    """The same model declaring its tied head as transformers' own models do."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}


def official_class(path):
    """`YuanForCausalLM` of a copy of YUAN's yuan_hf_model.py."""
    import transformers.modeling_utils  # noqa: F401  (before a flash_attn stub exists: transformers probes for it)

    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    stubbed = importlib.util.find_spec("flash_attn") is None
    if stubbed:
        stub = types.ModuleType("flash_attn")
        stub.flash_attn_func = stub.flash_attn_varlen_func = None
        sys.modules["flash_attn"] = stub
    try:
        spec = importlib.util.spec_from_file_location("yuan_hf_model_official", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if stubbed:
            del sys.modules["flash_attn"]
    return module.YuanForCausalLM


def check_layout(folder):
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        attention = json.load(f).get("yuan", {}).get("attention", {"name": "lfa", "options": {}})
    defaults = {"kernel": 2, "convs": 2, "norm": True}
    options = attention.get("options", {})
    if attention.get("name") != "lfa" or any(options.get(k, v) != v for k, v in defaults.items()):
        sys.exit(f"{folder}: attention {json.dumps(attention)} is not YUAN 2.0's LFA layout, which this loader implements")


def run(cls, folder, ids):
    model, info = cls.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    model.eval()
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits
    head, embed = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    return {
        "logits": logits.tolist(),
        "missing": sorted(info.get("missing_keys", [])),
        "unexpected": sorted(info.get("unexpected_keys", [])),
        "tied": head.data_ptr() == embed.data_ptr(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--variants", default="yuan,declared")
    parser.add_argument("--official")
    args = parser.parse_args()
    check_layout(args.model)
    with open(args.input, encoding="utf-8") as f:
        ids = torch.tensor(json.load(f)["input_ids"], dtype=torch.long)
    classes = {"yuan": YuanForCausalLM, "declared": DeclaredTiedYuanForCausalLM}
    out = {"transformers": transformers.__version__, "variants": {}}
    for name in args.variants.split(","):
        if name == "official":
            if not args.official:
                sys.exit("--variants official needs --official PATH (a copy of YUAN's yuan_hf_model.py)")
            try:  # a file we did not write: its failure is reported for this variant, the others still run
                out["variants"][name] = run(official_class(args.official), args.model, ids)
            except Exception as e:  # noqa: BLE001
                out["variants"][name] = {"error": f"{type(e).__name__}: {e}"}
        elif name in classes:
            out["variants"][name] = run(classes[name], args.model, ids)
        else:
            sys.exit(f"unknown variant {name!r}; expected yuan, declared or official")
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
