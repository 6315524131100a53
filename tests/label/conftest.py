"""A tiny labeling project: pool.json (20 items, classes cat/dog/bird), a batch in selected.csv."""

from pathlib import Path

import pytest
import torch

from lbench.pool import LabelPool

SIZE = 20
BATCH = [4, 5, 6, 7, 8]
CLASSES = ["cat", "dog", "bird"]


def item_id(i: int) -> str:
    return f"img/{i:04d}.jpg"


def make_project(folder: Path, names: bool = True) -> Path:
    """pool.json with items 0 (cat) and 1 (dog) labeled, BATCH pending, and the selected.csv select writes."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = LabelPool(SIZE, num_classes=3)
    pool.add_labels(torch.tensor([0, 1]), torch.tensor([0, 1]), round=0)
    pool.pending = list(BATCH)
    if names:
        pool.set_class_names(CLASSES)
    pool.save(folder / "pool.json")
    rows = ["rank,index,id,predicted,confidence,margin"]
    rows += [f"{r},{i},{item_id(i)},cat,0.5,0.1" for r, i in enumerate(BATCH)]
    (folder / "selected.csv").write_text("\n".join(rows) + "\n")
    return folder / "pool.json"


@pytest.fixture
def project(tmp_path):
    """The pool file of a fresh project (class names stored in it)."""
    return make_project(tmp_path / "project")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``folder``: its bytes, inode and modification time (a rewrite with the same bytes shows)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def label(args, capsys):
    """Run ``lbench label ARGS`` in-process: (exit code, stdout, stderr)."""
    from lbench.label.cli import main

    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err
