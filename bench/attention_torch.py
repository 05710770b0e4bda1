# The PyTorch side of bench/attention.mjs: causal scaled_dot_product_attention forward + backward on [B, A, S, d]
# float32 inputs. Usage: python attention_torch.py B A S D THREADS. Protocol, one JSON line per answer on stdout:
# at start {"rssBefore": MiB (after making the inputs), "version"}; for each `round` line on stdin
# {"fwd": s, "bwd": s}; for `exit`, {"peakRss": MiB} and the process ends.
import json
import resource
import sys
import time

import torch

b, a, s, d, threads = (int(x) for x in sys.argv[1:6])
torch.set_num_threads(threads)
torch.manual_seed(0)


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def say(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


q, k, v = (torch.randn(b, a, s, d, requires_grad=True) for _ in range(3))
dy = torch.randn(b, a, s, d)
say({'rssBefore': rss_mb(), 'version': torch.__version__})
for line in sys.stdin:
    if line.strip() == 'exit':
        break
    for t in (q, k, v):
        t.grad = None
    t0 = time.perf_counter()
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    t1 = time.perf_counter()
    o.backward(dy)
    t2 = time.perf_counter()
    del o
    say({'fwd': t1 - t0, 'bwd': t2 - t1})
say({'peakRss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
