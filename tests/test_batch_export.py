"""``select`` writes batch_XXX.{csv,png,labelstudio.json} next to the pool; Label Studio exports come back."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from lbench.batch_export import (
    CAPTION,
    THUMB,
    BatchItem,
    contact_sheet,
    next_batch_number,
    sheet_size,
)
from lbench.data.base import ArraySplit
from lbench.errors import DataError
from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli
from tests.test_init import run_init, write_photos

CPU = ["--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def image_project(tmp_path, capsys) -> Path:
    """An ImageProject via ``lbench init``: 8 unlabeled PNGs, cat/ and dog/ with 2 each."""
    root = write_photos(tmp_path / "photos")
    out = tmp_path / "proj"
    rc, _, err = run_init([root, "--out", out, "--image_size", "32", "--classes", "cat,dog"], capsys)
    assert rc == 0, err
    return out


def select(project: Path, capsys, budget: int = 4):
    rc, out, err = run_cli(["select", "-c", str(project / "project.yaml"), "--query", "Random", "--budget",
                            str(budget), *CPU], capsys)  # fmt: skip
    assert rc == 0, err
    return out


def test_select_writes_numbered_batches_on_an_image_project(image_project, capsys):
    out = select(image_project, capsys)
    names = ["batch_001.csv", "batch_001.png", "batch_001.labelstudio.json"]
    assert all((image_project / n).is_file() for n in names)
    line = next(x for x in out.splitlines() if x.startswith("batch files:"))
    assert all(n in line for n in names)
    rows = rows_of(image_project / "batch_001.csv")
    assert list(rows[0]) == ["rank", "index", "id", "path", "predicted", "probability", "score"]
    files = (image_project / "index.txt").read_text().splitlines()[1:]
    assert [int(r["rank"]) for r in rows] == [0, 1, 2, 3]
    assert all(r["path"] == r["id"] == files[int(r["index"])] for r in rows)
    assert all(r["predicted"] in ("cat", "dog") and 0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    selected = rows_of(image_project / "selected.csv")  # still written, same items in the same order
    assert [r["index"] for r in selected] == [r["index"] for r in rows]
    assert list(selected[0]) == ["rank", "index", "id", "predicted", "confidence", "margin"]
    with Image.open(image_project / "batch_001.png") as im:
        assert im.size == (4 * THUMB, THUMB + CAPTION) == sheet_size(4)
    tasks = json.loads((image_project / "batch_001.labelstudio.json").read_text())
    assert [t["data"]["index"] for t in tasks] == [int(r["index"]) for r in rows]
    assert [t["data"]["image"] for t in tasks] == [r["path"] for r in rows]
    pred = tasks[0]["predictions"][0]
    assert pred["model_version"] == "lbench" and isinstance(pred["score"], float)
    assert pred["result"][0] == {"from_name": "label", "to_name": "image", "type": "choices",
                                 "value": {"choices": [rows[0]["predicted"]]}}  # fmt: skip

    select(image_project, capsys)  # the second batch: the other 4 unlabeled items
    assert all((image_project / n.replace("001", "002")).is_file() for n in names)
    second = rows_of(image_project / "batch_002.csv")
    assert not {r["index"] for r in second} & {r["index"] for r in rows}
    assert rows_of(image_project / "batch_001.csv") == rows  # an earlier batch is never rewritten
    assert next_batch_number(image_project) == 3
    assert not list(image_project.glob(".*.tmp"))


def test_labelstudio_tasks_round_trip_through_label(image_project, capsys):
    select(image_project, capsys)
    tasks = json.loads((image_project / "batch_001.labelstudio.json").read_text())
    answers = ["cat", "dog", "dog", None]  # the last task is left unannotated
    export = []
    for k, (task, answer) in enumerate(zip(tasks, answers, strict=True), start=1):
        done = [] if answer is None else [{
            "id": 100 + k, "completed_by": 1, "was_cancelled": False, "lead_time": 2.5,
            "result": [{"id": f"r{k}", "from_name": "label", "to_name": "image", "type": "choices",
                        "origin": "manual", "value": {"choices": [answer]}}],
        }]  # fmt: skip
        export.append({"id": k, "data": task["data"], "annotations": done, "predictions": task["predictions"],
                       "meta": {}, "file_upload": "batch_001.labelstudio.json"})  # fmt: skip
    export_file = image_project / "export.json"
    export_file.write_text(json.dumps(export))
    rc, _, err = run_cli(["label", str(export_file), "--pool", str(image_project / "pool.json")], capsys)
    assert rc == 0, err
    pool = LabelPool.load(image_project / "pool.json")
    index = [t["data"]["index"] for t in tasks]
    assert pool.labels[index[:3]].tolist() == [0, 1, 1]
    assert pool.labels[index[3]] == -1 and pool.pending == [index[3]]  # unanswered: still pending


def test_in_memory_data_has_an_empty_path_and_a_contact_sheet(smoke_run, tmp_path, monkeypatch, capsys):
    out, cache = smoke_run
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(out / "margin" / "seed_0" / "pool.json", folder / "pool.json")
    monkeypatch.chdir(tmp_path)
    rc, stdout, err = run_cli(["select", "--model", str(CONFIGS / "model" / "linear.yaml"), "--data",
                               str(CONFIGS / "data" / "digits.yaml"), "--data.init_args.pool_file",
                               str(folder / "pool.json"), "--data.init_args.cache_dir", str(cache),
                               "--query", "Random", "--budget", "12"], capsys)  # fmt: skip
    assert rc == 0, err
    rows = rows_of(folder / "batch_001.csv")
    assert len(rows) == 12 and all(r["path"] == "" and r["id"] for r in rows)
    with Image.open(folder / "batch_001.png") as im:
        assert im.size == (10 * THUMB, 2 * (THUMB + CAPTION))
        assert len(set(im.convert("L").getdata())) > 2  # the digits are drawn, not blank tiles
    tasks = json.loads((folder / "batch_001.labelstudio.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [r["id"] for r in rows]


class _Broken(ArraySplit):
    def load_image(self, i: int) -> torch.Tensor:
        if i == 1:
            raise DataError("image file x.png was removed")
        if i == 2:
            raise OSError("unreadable")
        return super().load_image(i)


def test_contact_sheet_draws_missing_tiles_and_stays_bounded():
    grey = torch.full((3, 1, 5, 7), 200, dtype=torch.uint8)
    split = _Broken("toy", grey, torch.zeros(3, dtype=torch.long))
    items = [BatchItem(r, i, f"toy/{i}", "", "a", 0.5, 0.1) for r, i in enumerate([0, 1, 2])]
    sheet = contact_sheet(split, items)
    assert sheet.size == (3 * THUMB, THUMB + CAPTION)
    assert sheet.getpixel((THUMB + THUMB // 2, 2)) == (128, 128, 128)  # missing: a grey tile
    assert sheet.getpixel((2 * THUMB + THUMB // 2, 2)) == (128, 128, 128)
    assert sheet.getpixel((THUMB // 2, THUMB // 2)) == (200, 200, 200)  # grey (1 channel) image, upscaled
    many = [BatchItem(r, 0, "toy/0", "", "a", 0.5, 0.1) for r in range(250)]
    assert contact_sheet(split, many).size == (10 * THUMB, 10 * (THUMB + CAPTION)) == sheet_size(250)
