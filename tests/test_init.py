"""``lbench init``: a project over an image folder, usable by ``lbench select -c project.yaml``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from lbench.init import main as init_main
from lbench.pool import LabelPool


def png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (value, (3 * value) % 256, 255 - value)).save(path)


def write_photos(root: Path) -> Path:
    """8 unlabeled images (flat and nested) and cat/ and dog/ with 2 each, under ``root``."""
    for k in range(5):
        png(root / f"img_{k}.png", 20 * k)
    for k in range(3):
        png(root / "trip" / f"p{k}.png", 20 * k + 7)
    for k in range(2):
        png(root / "cat" / f"c{k}.png", 200 + k)
        png(root / "dog" / f"d{k}.png", 100 + k)
    return root


@pytest.fixture
def photos(tmp_path) -> Path:
    """The images of :func:`write_photos`, a corrupt image and a text file."""
    root = write_photos(tmp_path / "photos")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "readme.txt").write_text("my photos")
    return root


def run_init(args, capsys):
    rc = init_main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_init_writes_a_project(photos, tmp_path, capsys):
    out = tmp_path / "proj"
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", out, "--image_size", "32"], capsys)
    assert rc == 0, err
    assert "found 12 images" in stdout and "4 already labeled" in stdout and "2 files skipped" in stdout
    assert "broken.png" in stdout and "readme.txt" in stdout
    assert "note: sub-folders that are not classes (their images are unlabeled): trip" in stdout
    assert f"lbench select -c {out / 'project.yaml'} --query TypiClust --budget 8" in stdout
    pool = LabelPool.load(out / "pool.json")
    assert pool.size == 12 and pool.class_names == ["cat", "dog"] and pool.label_counts() == [2, 2]
    assert pool.selected_in_round(0) == pool.labeled_index().tolist()
    files = (out / "index.txt").read_text().splitlines()[1:]
    assert {files[i] for i in pool.labeled_index().tolist()} == {"cat/c0.png", "cat/c1.png", "dog/d0.png", "dog/d1.png"}
    config = yaml.safe_load((out / "project.yaml").read_text())
    data = config["data"]["init_args"]
    assert data["pool_file"] == str(out / "pool.json") and data["cache_dir"] == str(out / "cache")
    assert data["dataset"]["init_args"]["classes"] == ["cat", "dog"]
    assert data["encoder"]["class_path"] == "EfficientNetLite0Encoder"
    assert config["model"]["class_path"] == "ProxyClassifier"


def test_init_classes_from_folders_and_default_out(photos, capsys):
    (photos / "trip").rename(photos / "unlabeled")  # never a class
    rc, stdout, err = run_init([photos], capsys)
    assert rc == 0, err
    assert "classes: cat (2), dog (2)" in stdout
    out = photos / "lbench_project"
    assert LabelPool.load(out / "pool.json").size == 12
    rc, stdout, err = run_init([photos, "--force"], capsys)  # the project folder is not a class nor in the pool
    assert rc == 0, err
    assert "classes: cat (2), dog (2)" in stdout and "found 12 images" in stdout


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["{missing}"], "does not exist"),
        ("empty", ["{empty}", "--classes", "a,b"], "no readable image files"),
        ("flat", ["{flat}"], "no classes"),
        (None, ["{photos}", "--classes", "cat,dog,cat"], "'cat' is given twice"),
        (None, ["{photos}", "--classes", "cat,,dog"], "bad class name"),
        ("project", ["{photos}", "--classes", "cat,dog"], "already holds a project"),
        (None, ["{photos}", "--image_size", "8"], "at least 32"),
        (None, ["{photos}", "--test_dir", "nope"], "does not exist"),
        (None, ["{photos}", "--bogus"], "unrecognized arguments"),
    ],
)
def test_init_errors_are_one_line_exit_2_nothing_written(photos, tmp_path, capsys, setup, args, message):
    empty, flat = tmp_path / "empty", tmp_path / "flat"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "x.txt").write_text("not an image")
    png(flat / "x.png", 1)
    if setup == "project":
        assert run_init([photos], capsys)[0] == 0
    before = snapshot(tmp_path)
    names = {"missing": tmp_path / "missing", "empty": empty, "flat": flat, "photos": photos}
    rc, stdout, err = run_init([a.format(**names) for a in args], capsys)
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("lbench: error: ") and message in err, err
    assert snapshot(tmp_path) == before


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_select_random_on_an_init_project(photos, tmp_path, capsys):
    """init -> select --query Random --budget 3 through lbench.cli.main (a test folder: see the next test)."""
    from lbench.cli import main

    png(photos / "test" / "cat" / "t0.png", 210)
    png(photos / "test" / "dog" / "t1.png", 110)
    out = tmp_path / "proj"
    args = [photos, "--out", out, "--image_size", "32", "--test_dir", "test", "--classes", "cat,dog"]
    rc, stdout, err = run_init(args, capsys)
    assert rc == 0, err
    assert "1 test images" not in stdout and "2 test images in test" in stdout
    rc = main(["select", "-c", str(out / "project.yaml"), "--query", "Random", "--budget", "3",
               "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "selected 3 items with" in captured.out
    with open(out / "selected.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    files = (out / "index.txt").read_text().splitlines()[1:]
    assert len(rows) == 3 and all(files[int(r["index"])] == r["id"] for r in rows)
    assert all(not r["id"].startswith(("cat/", "dog/", "test/")) for r in rows)  # unlabeled items only
    pool = LabelPool.load(out / "pool.json")
    assert sorted(pool.pending) == sorted(int(r["index"]) for r in rows)


def test_select_random_on_a_project_without_test_split(photos, tmp_path, capsys):
    from lbench.cli import main

    out = tmp_path / "proj"
    assert run_init([photos, "--out", out, "--image_size", "32", "--classes", "cat,dog"], capsys)[0] == 0
    rc = main(["select", "-c", str(out / "project.yaml"), "--query", "Random", "--budget", "3",
               "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err


def test_select_after_new_files_grows_the_pool_and_keeps_the_indices(photos, tmp_path, capsys):
    """A person adds photos to the folder between two selects: old indices stay, the new ones are unlabeled."""
    from PIL import Image

    from lbench.cli import main

    out = tmp_path / "proj"
    assert run_init([photos, "--out", out, "--image_size", "32", "--classes", "cat,dog"], capsys)[0] == 0
    before = LabelPool.load(out / "pool.json")
    Image.new("RGB", (12, 10), (200, 10, 10)).save(Path(photos) / "zz_new.png")
    rc = main(["select", "-c", str(out / "project.yaml"), "--query", "Random", "--budget", "2",
               "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    after = LabelPool.load(out / "pool.json")
    assert after.size == before.size + 1 and torch.equal(after.labels[: before.size], before.labels)
    assert (out / "index.txt").read_text().splitlines()[-1] == "zz_new.png"


def test_run_refuses_a_pool_without_ground_truth(photos, tmp_path, capsys):
    from lbench.cli import main

    out = tmp_path / "proj"
    assert run_init([photos, "--out", out, "--image_size", "32", "--classes", "cat,dog"], capsys)[0] == 0
    rc = main(["run", "-c", str(out / "project.yaml"), "--arms", "[Random]", "--out_dir", str(tmp_path / "r"),
               "--rounds", "1", "--budget", "2", "--initial_budget", "2",
               "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "no ground truth" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists() and not (out / "cache").exists()  # refused before embedding anything


def test_warnings_print_as_one_line_each(photos, tmp_path):
    """The broken files a project leaves out are one warning line in select, not message + Python's source line."""
    import os
    import subprocess
    import sys

    out = tmp_path / "proj"
    assert init_main([str(photos), "--classes", "cat,dog", "--out", str(out), "--image_size", "32"]) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "lbench", "select", "-c", str(out / "project.yaml"), "--query",
                           "Random", "--budget", "1", "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "broken.png" in line]
    assert len(warning) == 1 and warning[0].startswith("UserWarning: ")
    assert not any(line.startswith("  warnings.warn(") for line in proc.stderr.splitlines())


# -- --labels FILE.csv: labels to start with, through the validated import ---------------------------
def test_init_labels_csv_seeds_the_pool(photos, tmp_path, capsys):
    from lbench.label import JOURNAL_NAME, Parsed, import_answers, read_journal

    labels = tmp_path / "my_labels.csv"
    labels.write_text("path,label\nimg_0.png,dog\ntrip/p1.png,cat\ncat/c0.png,cat\nimg_3.png,unsure\nimg_4.png,\n")
    out = tmp_path / "proj"
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", out, "--labels", labels], capsys)
    assert rc == 0, err
    assert f"labels from {labels}: 3 images labeled, 1 skip/unsure" in stdout and "6 labeled in all" in stdout
    assert "classes: cat (3), dog (3)" in stdout
    files = (out / "index.txt").read_text().splitlines()[1:]
    pool = LabelPool.load(out / "pool.json")
    named = {files[i]: pool.class_names[int(pool.labels[i])] for i in pool.labeled_index().tolist()}
    assert named == {"img_0.png": "dog", "trip/p1.png": "cat", "cat/c0.png": "cat", "cat/c1.png": "cat",
                     "dog/d0.png": "dog", "dog/d1.png": "dog"}  # fmt: skip
    assert pool.skipped == {files.index("img_3.png"): "unsure"} and pool.pending == []
    assert sorted(pool.selected_in_round(0)) == pool.labeled_index().tolist()  # all seeds are round 0
    (entry,) = read_journal(out / JOURNAL_NAME)
    assert entry["annotator"] == "my_labels.csv" and entry["source"] == str(labels.resolve())
    assert pool.journal_seq == 1 and pool.history[0]["annotator"] == "my_labels.csv"
    assert pool.history[0]["labeled"] == 3 and pool.history[0]["unsure"] == 1
    # the journal goes on: a later `label` is entry 2
    done = import_answers(out / "pool.json", Parsed.from_answers([files.index("img_1.png")], [0]), annotator="ana")
    assert done.seq == 2 and LabelPool.load(out / "pool.json").num_labeled == 7


def test_init_labels_by_index_and_force_drops_the_old_journal(photos, tmp_path, capsys):
    from lbench.label import JOURNAL_NAME

    out = tmp_path / "proj"
    labels = tmp_path / "by_index.csv"
    labels.write_text("index,label\n4,cat\n")  # img_0.png (cat/ and dog/ sort first)
    assert run_init([photos, "--classes", "cat,dog", "--out", out, "--labels", labels], capsys)[0] == 0
    assert (out / JOURNAL_NAME).exists() and LabelPool.load(out / "pool.json").num_labeled == 5
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", out], capsys)
    assert rc == 2 and "already holds a project" in err
    old = ["proxy.ckpt", "proxy.json", "stop_predictions.json", "selected.csv", "batch_001.csv", "batch_001.png",
           "batch_001.labelstudio.json"]  # fmt: skip
    for name in [*old, "notes.txt", "batch_notes.csv", "batch_007.png"]:  # select's, and files of the user's
        (out / name).write_text("x")
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", out, "--force"], capsys)
    assert rc == 0, err
    assert not (out / JOURNAL_NAME).exists()  # else the old answers would be replayed into the new pool
    assert LabelPool.load(out / "pool.json").num_labeled == 4
    assert not any((out / name).exists() for name in old) and "removed what select wrote" in stdout
    assert all((out / n).exists() for n in ("notes.txt", "batch_notes.csv", "batch_007.png"))  # not select's


def test_init_points_out_a_labels_csv_it_does_not_read(photos, tmp_path, capsys):
    (photos / "labels.csv").write_text("path,label\nimg_0.png,cat\n")
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", tmp_path / "proj"], capsys)
    assert rc == 0, err
    assert f"note: {photos / 'labels.csv'} was not read" in stdout and "--labels" in stdout
    assert LabelPool.load(tmp_path / "proj" / "pool.json").num_labeled == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("file,label\nimg_0.png,cat\n", "header"),
        ("path,label\nnope.png,cat\n", "unknown id 'nope.png' (not an image of the folder"),
        ("path,label\nreadme.txt,cat\n", "unknown id 'readme.txt'"),  # skipped files are not in the pool
        ("path,label\nimg_0.png,cow\n", "label 'cow' is not a class (classes: cat, dog); name it in --classes"),
        ("path,label\nimg_0.png,cat\nimg_0.png,cat\n", "is repeated (also on line 2)"),
        ("path,label\nimg_0.png,cat\nimg_0.png,dog\n", "conflicting answers for item"),
        ("path,label\ncat/c1.png,dog\n", "cat/c1.png is in the class folder 'cat' but the file says 'dog'"),
        ("path,label\ndog/d0.png,skip\n", "dog/d0.png is in the class folder 'dog' but the file says 'skip'"),
        ("index,label\n99,cat\n", "index 99 is not in the pool"),
    ],
)
def test_init_bad_labels_file_is_one_line_exit_2_nothing_written(photos, tmp_path, capsys, content, message):
    labels = tmp_path / "labels_in.csv"
    if content is not None:
        labels.write_text(content)
    before = snapshot(tmp_path)
    out = tmp_path / "proj"
    rc, stdout, err = run_init([photos, "--classes", "cat,dog", "--out", out, "--labels", labels], capsys)
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("lbench: error: ") and message in err, err
    assert snapshot(tmp_path) == before and not out.exists()
