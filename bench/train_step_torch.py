"""The baseline of bench/train-step.mjs: one forward + backward + Adam step of an LFA preset's model in PyTorch.

Same architecture as yuan's LFA presets with the sizes given (tiny-lfa's by default; tied embeddings, pre-RMSNorm, LFA with two causal convolutions of
kernel 2 and RMSNorm, RoPE, causal softmax attention, SwiGLU). Attention is op by op (`--attention math`: QKᵀ, mask,
softmax, ·V) or PyTorch's fused `scaled_dot_product_attention` (`--attention sdpa`). Runs under Debian's python3-torch with OpenBLAS;
the caller sets OPENBLAS_NUM_THREADS. Protocol on stdin/stdout, one JSON line per answer, so that the caller can
interleave rounds with its own: first a line with the parameter count and matMul GFLOP/s, then for each input line
"steps N" the seconds of N steps (wall, and "cpu": the process's CPU seconds, all threads), and their losses (a warm-up step runs before the first answer).
"""
import sys
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--vocab", type=int, default=264)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--ffn", type=int, default=512)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--attention", choices=["math", "sdpa"], default="math")
p.add_argument("--matmul", default="1024x128x512,512x512x512,1024x1024x1024", help="matMul shapes MxKxN to time, comma-separated")
p.add_argument("--matmul-reps", type=int, default=20)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
H, NH, HD, FF = args.hidden, args.heads, args.hidden // args.heads, args.ffn


def rms_norm(x, w, eps=1e-6):
    return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def causal_conv(x, w, b):  # x [B, T, C]; w [out, in, K, 1] (PyTorch Conv2d layout, as yuan's checkpoints)
    k = w.shape[2]
    y = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), w[..., 0], b)
    return y.transpose(1, 2)


def rope(x, cos, sin):  # x [B, T, heads, d], rotate-half layout
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


def param(*shape, std=0.02):
    return torch.nn.Parameter(torch.randn(*shape) * std)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = param(args.vocab, H)
        self.layers = torch.nn.ModuleList()
        for _ in range(args.layers):
            l = torch.nn.Module()
            l.n1, l.n2, l.nf = (torch.nn.Parameter(torch.ones(H)) for _ in range(3))
            l.qk, l.v, l.o = param(2 * H, H), param(H, H), param(H, H)
            l.c1w, l.c1b = param(H // 2, H, 2, 1), param(H // 2)
            l.c2w, l.c2b = param(H, H // 2, 2, 1), param(H)
            l.up, l.down = param(2 * FF, H), param(H, FF)
            self.layers.append(l)
        self.norm = torch.nn.Parameter(torch.ones(H))
        inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.arange(args.seq).float()[:, None] * inv[None]
        full = torch.cat([ang, ang], -1)[None, :, None, :]
        self.cos, self.sin = full.cos(), full.sin()

    def forward(self, ids):
        b, t = ids.shape
        h = self.embed[ids]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for l in self.layers:
            x = rms_norm(h, l.n1)
            u = causal_conv(causal_conv(x, l.c1w, l.c1b), l.c2w, l.c2b)
            z = rms_norm(u + x, l.nf)
            q, k = (z @ l.qk.t()).view(b, t, NH, 2 * HD).chunk(2, -1)
            v = (x @ l.v.t()).view(b, t, NH, HD)
            q, k, v = (y.transpose(1, 2) for y in (rope(q, self.cos, self.sin), rope(k, self.cos, self.sin), v))
            if args.attention == "sdpa":
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                y = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + mask, -1) @ v
            h = h + (y.transpose(1, 2).reshape(b, t, H)) @ l.o.t()
            a, g = (rms_norm(h, l.n2) @ l.up.t()).chunk(2, -1)
            h = h + (F.silu(a) * g) @ l.down.t()
        return rms_norm(h, self.norm) @ self.embed.t()


model = Model()
opt = torch.optim.Adam(model.parameters(), lr=3e-4)
gen = torch.Generator().manual_seed(1)
ids = torch.randint(0, 256, (args.batch, args.seq), generator=gen)
targets = torch.randint(0, 256, (args.batch, args.seq), generator=gen)


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(ids).reshape(-1, args.vocab), targets.reshape(-1))
    loss.backward()
    opt.step()
    return loss.item()


def gflops(m, k, n, reps):
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


step()  # warm-up
print(json.dumps({
    "torch": torch.__version__,
    "params": sum(x.numel() for x in model.parameters()),
    "matmul": {s: gflops(*map(int, s.split("x")), args.matmul_reps) for s in args.matmul.split(",")},
}), flush=True)
for line in sys.stdin:
    n = int(line.split()[1])
    seconds, cpu, losses = [], [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step())
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "losses": losses}), flush=True)
