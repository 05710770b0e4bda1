"""Prints the compute actions of PyTorch's pipeline schedules as JSON, for packages/plan's comparison test.

Usage: torch_schedules.py <ranks>x<micro-batches>,... <schedule class name> ...  (e.g. 2x4,4x8 Schedule1F1B)
Output: {"<P>x<M>": {"<name>": [["0F0", "0F1", ...], ...one list per rank]}}. Bubbles (None) and the REDUCE_GRAD actions PyTorch
adds after a stage's last backward are left out: only F, B, I and W are compared.
"""

import json
import sys

from torch.distributed.pipelining import schedules
from torch.distributed.pipelining._schedule_visualizer import get_schedule_ops

COMPUTE = {"F", "B", "I", "W"}


def main() -> None:
    out = {}
    for size in sys.argv[1].split(","):
        ranks, micro = (int(x) for x in size.split("x"))
        out[size] = {}
        for name in sys.argv[2:]:
            cls = getattr(schedules, name)
            per_stage = 1 if issubclass(cls, schedules.PipelineScheduleSingle) else 2
            ops = get_schedule_ops(cls, ranks, micro, num_stages_per_rank=per_stage)
            out[size][name] = [
                [str(a) for a in rank if a is not None and a.computation_type.value in COMPUTE] for rank in ops
            ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
