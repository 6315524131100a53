"""Run by tests/test_reuse_selection.py as a subprocess: the README's "own Lightning project" block on 2 CPU ranks.

The block runs as written, except that its Trainer gets ``accelerator="cpu", devices=2, strategy="ddp"`` (gloo).
Lightning's launcher starts this script again as rank 1. Each rank writes what it ended with to OUT/rank_<r>.json.
"""

import json
import sys
from pathlib import Path

from lbench.distributed import release_process_group

DDP = 'L.Trainer(accelerator="cpu", devices=2, strategy="ddp", enable_model_summary=False, '


def readme_block() -> str:
    """The README's python block that uses ActiveLoop."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "ActiveLoop(" in b]
    assert len(blocks) == 1, f"{len(blocks)} README python blocks use ActiveLoop"
    return blocks[0]


def main(out: Path) -> None:
    code = readme_block()
    assert code.count("L.Trainer(") == 1
    namespace: dict = {"__name__": "readme_block"}
    exec(compile(code.replace("L.Trainer(", DDP), "README.md", "exec"), namespace)  # noqa: S102
    trainer, loop, pool = namespace["trainer"], namespace["loop"], namespace["pool"]
    seen = None if loop.view is None else sorted(loop.view.index.tolist() + loop.view.labeled_index.tolist())
    result = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "selected": loop.selected.tolist(),
        "seen": seen,
        "round_1": pool.selected_in_round(1),
    }
    (out / f"rank_{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:
        release_process_group()
