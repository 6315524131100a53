"""Test settings: offline, CPU, few threads, non-interactive plots."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(args, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from lbench.cli import main

    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """configs/smoke.yaml run once per session (2 arms x 2 seeds x 4 rounds on digits): (run dir, cache dir)."""
    from lbench.cli import main

    out = tmp_path_factory.mktemp("smoke") / "run"
    cache = tmp_path_factory.mktemp("cache")
    rc = main(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(out),
               "--data.init_args.cache_dir", str(cache)])  # fmt: skip
    assert rc == 0
    return out, cache
