"""The README's "Label your own images" walk-through, run as written on a generated folder of 60 images."""

import csv
import random
import re
import shlex
from pathlib import Path

from PIL import Image

from lbench.cli import main
from lbench.pool import LabelPool

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
NAMES = ["cat", "dog", "bird"]


def _walkthrough():
    block = README.split("### Label your own images", 1)[1]
    block = re.search(r"```bash\n(.*?)```", block, re.S).group(1)
    lines = [c.split(" # ")[0].strip() for c in block.replace("\\\n", " ").splitlines()]
    return [c for c in lines if c and not c.startswith("#")]


def test_walkthrough_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    (tmp_path / "photos").mkdir()
    for i in range(60):  # three colours: a learnable toy "cat, dog, bird"
        c = i % 3
        rgb = tuple(200 * (k == c) + rng.randint(0, 50) for k in range(3))
        Image.new("RGB", (24, 20), rgb).save(tmp_path / "photos" / f"img{i:03d}.png")
    commands = _walkthrough()
    assert [c.split()[1] for c in commands] == ["init", "select", "label", "fit", "select"]
    first_batch = None
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "label":  # the person answers: fill in the label column
            path = tmp_path / "myproject" / "selected.csv"
            rows = list(csv.DictReader(path.open()))
            first_batch = [int(r["index"]) for r in rows]
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=[*rows[0], "label"])
                w.writeheader()
                w.writerows({**r, "label": NAMES[int(r["index"]) % 3]} for r in rows)
        rc = main(args)
        assert rc in (0, None), (command, capsys.readouterr().err)
    pool = LabelPool.load(tmp_path / "myproject" / "pool.json")
    assert pool.num_labeled == 20 and sorted(pool.labeled_index().tolist()) == sorted(first_batch)
    assert all(int(pool.labels[i]) == i % 3 for i in first_batch)
    second = [int(r["index"]) for r in csv.DictReader((tmp_path / "myproject" / "selected.csv").open())]
    assert len(second) == 20 and not set(second) & set(first_batch)  # nothing proposed twice
    assert sorted(pool.pending) == sorted(second)
