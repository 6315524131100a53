"""One rank of the 2-process sharded-selection tests (run by test_sharded.py through subprocess, gloo on CPU).

Usage: ``python _sharded_worker.py RANK WORLD PORT OUT_DIR DRAWS``. Rank 0 writes ``OUT_DIR/result.json``.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lbench.strategies import Badge, Coreset  # noqa: E402
from lbench.strategies.sharded import sharded_k_center, sharded_kmeanspp  # noqa: E402

SPLIT = 37  # rank 0 holds rows [0, 37), rank 1 the rest: uneven shards


def coreset_data():
    g = torch.Generator().manual_seed(21)
    return torch.randn(100, 6, generator=g), torch.randn(5, 6, generator=g)


def badge_data():
    g = torch.Generator().manual_seed(22)
    probs = torch.softmax(2.0 * torch.randn(12, 3, generator=g, dtype=torch.float64), dim=1)
    emb = torch.randn(12, 4, generator=g, dtype=torch.float64)
    pending = (
        torch.softmax(torch.randn(1, 3, generator=g, dtype=torch.float64), dim=1),
        torch.randn(1, 4, generator=g, dtype=torch.float64),
    )
    return probs, emb, pending


def main():
    rank, world, port, out, draws = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
        result = {}
        x, lab = coreset_data()
        xs = x[rows]
        result["coreset_labeled"] = sharded_k_center(20, embeddings=xs, labeled_embeddings=lab).tolist()
        result["coreset_free"] = [
            sharded_k_center(15, torch.Generator().manual_seed(s), embeddings=xs).tolist() for s in range(3)
        ]
        chunks = [xs.numpy()[:10], xs.numpy()[10:]]  # streamed, two chunks per rank
        result["coreset_streamed"] = sharded_k_center(20, chunks=chunks, labeled_embeddings=lab, block_rows=4).tolist()
        index = torch.arange(1000, 1100)[rows]
        result["coreset_index"] = sharded_k_center(20, embeddings=xs, labeled_embeddings=lab, index=index).tolist()
        hook = Coreset().select_sharded(index.numpy(), xs.numpy(), 20, torch.Generator().manual_seed(0), lab)
        result["coreset_hook"] = hook.tolist()

        probs, emb, (pp, pe) = badge_data()
        r = slice(0, 5) if rank == 0 else slice(5, None)
        counts = np.zeros(12)
        for seed in range(draws):
            pick = sharded_kmeanspp(1, torch.Generator().manual_seed(seed), probs=probs[r], embeddings=emb[r],
                                    storage_dtype=torch.float64, pending_probs=pp, pending_embeddings=pe)  # fmt: skip
            counts[int(pick[0])] += 1
        result["badge_counts"] = counts.tolist()
        runs = [
            sharded_kmeanspp(8, torch.Generator().manual_seed(5), probs=probs[r], embeddings=emb[r]).tolist()
            for _ in range(2)
        ]
        result["badge_runs"] = runs
        result["badge_hook"] = (
            Badge()
            .select_sharded(
                (torch.arange(12) + 500)[r].numpy(),
                probs[r].numpy(),
                emb[r].numpy(),
                6,
                torch.Generator().manual_seed(2),
            )
            .tolist()
        )
        gathered = [None] * world
        dist.all_gather_object(gathered, result)
        if rank == 0:
            (out / "result.json").write_text(json.dumps({"ranks": gathered}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
