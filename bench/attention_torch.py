# The PyTorch side of bench/attention.mjs: causal scaled_dot_product_attention forward + backward on [B, A, S, d]
# float32 inputs, timed round by round, with the process's RSS before the first call and its peak RSS at the end.
# Usage: python attention_torch.py B A S D ROUNDS THREADS; prints one JSON line.
import json
import resource
import sys
import time

import torch

b, a, s, d, rounds, threads = (int(x) for x in sys.argv[1:7])
torch.set_num_threads(threads)
torch.manual_seed(0)


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


q, k, v = (torch.randn(b, a, s, d, requires_grad=True) for _ in range(3))
dy = torch.randn(b, a, s, d)
before = rss_mb()
fwd, bwd = [], []
for r in range(rounds + 1):  # round 0 warms up
    for t in (q, k, v):
        t.grad = None
    t0 = time.perf_counter()
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    t1 = time.perf_counter()
    o.backward(dy)
    t2 = time.perf_counter()
    if r > 0:
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    del o
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({'fwd': fwd, 'bwd': bwd, 'rssBefore': before, 'peakRss': peak, 'version': torch.__version__}))
