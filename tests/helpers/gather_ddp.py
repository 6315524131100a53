"""Run by tests/test_loop.py as 2 subprocesses (gloo): gather_rows brings every rank's rows to rank 0 only.

Usage: python gather_ddp.py RANK PORT OUT
"""

import json
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist

from lbench.loop import gather_rows


def main() -> None:
    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:

        def all_gather(t):
            parts = [torch.empty_like(t) for _ in range(2)]
            dist.all_gather(parts, t)
            return torch.stack(parts)

        strategy = SimpleNamespace(all_gather=all_gather)
        trainer = SimpleNamespace(world_size=2, is_global_zero=rank == 0, strategy=strategy)
        index = torch.tensor([4, 0, 2]) if rank == 0 else torch.tensor([3, 4])  # uneven; 4 twice (padding)
        rows = {"index": index, "probs": index.float().unsqueeze(1).repeat(1, 2)}
        got = gather_rows(trainer, rows)
        with open(f"{out}/rank_{rank}.json", "w") as f:
            json.dump({"index": got["index"].tolist(), "probs": got["probs"][:, 0].tolist()}, f)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
