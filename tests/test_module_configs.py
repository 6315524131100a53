"""Each module's YAML runs through the real CLI (``lbench fit ... --trainer.fast_dev_run true``)."""

from pathlib import Path

import pytest
import torch

from lbench.data.fashion_mnist import DEFAULT_ROOT
from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli

HAS_FMNIST = Path(DEFAULT_ROOT, "train-images-idx3-ubyte.gz").exists()
FLEXMATCH = ["--model.init_args.ssl", "FlexMatch", "--model.init_args.ssl.uratio", "2"]


def _pool_file(tmp_path, size, classes, labeled=40):
    pool = LabelPool(size, classes)
    idx = torch.arange(labeled)
    pool.add_labels(idx, idx % classes, round=0)
    path = tmp_path / "pool.json"
    pool.save(path)
    return str(path)


def _fit(tmp_path, capsys, *args):
    rc, _, err = run_cli(["fit", *args, "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
                          "--trainer.default_root_dir", str(tmp_path / "fit")], capsys)  # fmt: skip
    return rc, err


@pytest.mark.parametrize("ssl", [[], FLEXMATCH], ids=["supervised", "flexmatch"])
@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_proxy_yaml_fast_dev_run(tmp_path, capsys, model, ssl):
    views = ["--data.init_args.weak_views", "1", "--data.init_args.strong_views", "1"] if ssl else []
    rc, err = _fit(tmp_path, capsys, "--model", str(CONFIGS / "model" / f"{model}.yaml"), "--data",
                   str(CONFIGS / "data" / "digits.yaml"), "--data.init_args.cache_dir", str(tmp_path / "cache"),
                   "--data.init_args.pool_file", _pool_file(tmp_path, 1258, 10), *views, *ssl)  # fmt: skip
    assert rc == 0, err


@pytest.mark.parametrize("ssl", [[], FLEXMATCH], ids=["supervised", "flexmatch"])
def test_finetune_yaml_fast_dev_run_on_digit_images(tmp_path, capsys, ssl):
    rc, err = _fit(tmp_path, capsys, "--model", str(CONFIGS / "model" / "finetune.yaml"),
                   "--model.init_args.encoder.init_args.weights", "none", "--data", "ImageDataModule",
                   "--data.init_args.dataset", "Digits", "--data.init_args.batch_size", "8",
                   "--data.init_args.pool_file", _pool_file(tmp_path, 1258, 10), *ssl)  # fmt: skip
    assert rc == 0, err


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist is not installed")
def test_finetune_and_images_yaml_as_shipped(tmp_path, capsys):
    """model/finetune.yaml + data/fashion_mnist_images.yaml, unchanged: the packaged weights, 64 px."""
    rc, err = _fit(tmp_path, capsys, "--model", str(CONFIGS / "model" / "finetune.yaml"), "--data",
                   str(CONFIGS / "data" / "fashion_mnist_images.yaml"),
                   "--data.init_args.pool_file", _pool_file(tmp_path, 10000, 10))  # fmt: skip
    assert rc == 0, err
