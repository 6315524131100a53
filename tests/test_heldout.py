"""Held-out estimates without a test split: stratified k-fold cross-validation of the proxy recipe."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold

from lbench.data import Digits
from lbench.data.embeddings import EmbeddingDataModule
from lbench.encoders import PixelEncoder
from lbench.heldout import CVEstimate, choose_folds, cross_validate, fold_indices
from lbench.modules import ProxyClassifier
from lbench.pool import LabelPool

KWARGS = {"accelerator": "cpu", "devices": 1, "max_epochs": 3, "logger": False, "enable_checkpointing": False,
          "enable_progress_bar": False, "enable_model_summary": False}  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "folds", "why"),
    [
        ([0] * 6 + [1] * 7 + [2] * 5, 5, None),
        ([0] * 3 + [1] * 9, 3, None),  # the smallest class sets k
        ([0, 0, 1, 1], 2, None),
        ([0] * 4 + [1], 0, "single label"),
        ([2] * 8, 0, "only one class"),
        ([], 0, "no labels"),
    ],
)
def test_choose_folds(labels, folds, why):
    k, reason = choose_folds(np.array(labels, dtype=np.int64))
    assert k == folds
    assert (reason is None) == (why is None) and (why is None or why in reason)


def test_folds_are_scikit_learns_stratified_kfold():
    y = np.array([0, 1, 2] * 7 + [0])
    ours = fold_indices(y, 5, seed=3)
    ref = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=3).split(np.zeros(len(y)), y))
    assert len(ours) == 5
    for (a, b), (c, d) in zip(ours, ref, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    held = np.concatenate([h for _, h in ours])
    assert sorted(held.tolist()) == list(range(len(y)))  # every labeled item held out exactly once


def test_line_and_json():
    est = CVEstimate(n=40, folds=5, acc=0.85, balanced_acc=0.8125, fold_acc=[0.75, 0.9, 0.875, 0.875, 0.85])
    assert est.line() == (
        "no test split: 5-fold cross-validated estimate on the 40 labeled items, not a test score: "
        "accuracy 0.850, balanced accuracy 0.812 (folds 0.750-0.900)"
    )
    data = json.loads(json.dumps(est.to_json()))
    assert data["kind"] == "cross_validated" and data["n"] == 40 and data["reason"] is None
    assert CVEstimate.from_json(data) == est
    none = CVEstimate(n=3, reason="it needs labels of at least 2 classes")
    assert not none.available and none.to_json()["acc"] is None
    assert none.line() == "no test split, and no cross-validated estimate: it needs labels of at least 2 classes"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    dm = EmbeddingDataModule(Digits(), PixelEncoder(native_size=8), cache_dir=str(tmp_path_factory.mktemp("c")),
                             batch_size=32, samples_per_epoch=128)  # fmt: skip
    dm.setup("fit")
    pool = dm.new_pool()
    idx = torch.randperm(dm.pool_size, generator=torch.Generator().manual_seed(0))[:60]
    pool.add_labels(idx, dm.make_oracle().query(idx), round=0)
    dm.pool = pool
    return dm


def test_estimate_equals_a_direct_reference(digits):
    """Same folds (scikit-learn), the module trained per fold on the fold's labels, scikit-learn's metrics."""
    model = ProxyClassifier(lr=0.01)
    pool = digits.pool
    rng_before = torch.get_rng_state()
    est = cross_validate(model, digits, dict(KWARGS))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the selection after it draws the same numbers
    assert digits.pool is pool  # the data module's labels are put back
    index = pool.labeled_index()
    y = pool.labels[index].numpy()
    assert est.n == 60 and est.folds == min(5, int(np.bincount(y).min()))
    folds = StratifiedKFold(n_splits=est.folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    predicted = np.full(len(y), -1)
    x_all = digits.pool_x
    for f, (train, held) in enumerate(folds):
        fold_pool = LabelPool(pool.size, pool.num_classes)
        fold_pool.add_labels(index[train], torch.from_numpy(y[train]), round=0)
        digits.pool = fold_pool
        try:
            torch.manual_seed(f)
            m = copy.deepcopy(model)
            L.Trainer(**KWARGS).fit(m, datamodule=digits)
        finally:
            digits.pool = pool
        m.eval()
        with torch.no_grad():
            predicted[held] = m(x_all[index[held]]).argmax(-1).numpy()
        assert est.fold_acc[f] == pytest.approx(accuracy_score(y[held], predicted[held]), abs=1e-12)
    assert est.acc == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert est.balanced_acc == pytest.approx(balanced_accuracy_score(y, predicted), abs=1e-12)
    assert 0.3 < est.acc <= 1.0  # 60 digits on pixels: well above chance (0.1)


def test_too_few_labels_gives_no_estimate_and_trains_nothing(digits):
    pool = LabelPool(digits.pool_size, digits.num_classes)
    pool.add_labels(torch.tensor([0, 1, 2]), torch.tensor([3, 3, 5]), round=0)
    saved, digits.pool = digits.pool, pool
    try:
        est = cross_validate(ProxyClassifier(), digits, {**KWARGS, "max_epochs": 0})
    finally:
        digits.pool = saved
    assert not est.available and est.n == 3 and est.folds == 0 and "single label" in est.reason


# -- through `lbench select --train true` on an init project -----------------------------------
def make_project(root: Path, labeled: int, test: bool, capsys) -> Path:
    from lbench.init import main as init_main

    names = ["cat", "dog", "bird"]
    rows = ["path,label"]
    for i in range(30):
        c = i % 3
        rgb = tuple(200 * (k == c) + (7 * i) % 50 for k in range(3))
        (root / "photos").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 20), rgb).save(root / "photos" / f"img{i:03d}.png")
        if i < labeled:
            rows.append(f"img{i:03d}.png,{names[c]}")
        if test and i < 6:
            (root / "photos" / "test" / names[c]).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 20), rgb).save(root / "photos" / "test" / names[c] / f"t{i}.png")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    out = root / "proj"
    args = ["--test_dir", "test"] if test else []
    rc = init_main([str(root / "photos"), "--classes", "cat,dog,bird", "--out", str(out), "--image_size", "32",
                    "--labels", str(root / "labels.csv"), *args])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    return out


def select_train(out: Path, capsys) -> str:
    from lbench.cli import main

    rc = main(["select", "-c", str(out / "project.yaml"), "--query", "Margin", "--budget", "2", "--train", "true",
               "--trainer.accelerator", "cpu", "--trainer.max_epochs", "2",
               "--data.init_args.device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


def test_select_train_without_test_split_prints_and_stores_the_estimate(tmp_path, capsys):
    out = make_project(tmp_path, labeled=12, test=False, capsys=capsys)
    stdout = select_train(out, capsys)
    meta = json.loads((out / "proxy.json").read_text())
    est = CVEstimate.from_json(meta["cv"])
    assert meta["cv"]["kind"] == "cross_validated" and est.n == 12 and est.folds == 4 and est.available
    lines = [line for line in stdout.splitlines() if "cross-validated" in line]
    assert lines == [est.line()] and "not a test score" in lines[0]
    again = select_train(out, capsys)  # same labels: the proxy is reused, the stored estimate said again
    assert "did not change" in again and est.line() in again.splitlines()


def test_select_train_with_too_few_labels_says_why(tmp_path, capsys):
    out = make_project(tmp_path, labeled=4, test=False, capsys=capsys)  # cat 2, dog 1, bird 1
    stdout = select_train(out, capsys)
    meta = json.loads((out / "proxy.json").read_text())
    assert meta["cv"]["acc"] is None and "single label" in meta["cv"]["reason"]
    assert "no test split, and no cross-validated estimate: 2 labeled class(es) have a single label" in stdout


def test_no_estimate_with_a_test_split(tmp_path, capsys):
    out = make_project(tmp_path, labeled=12, test=True, capsys=capsys)
    stdout = select_train(out, capsys)
    assert "cv" not in json.loads((out / "proxy.json").read_text())
    assert "cross-validated" not in stdout
