"""Test settings: offline, CPU, few threads, non-interactive plots."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
