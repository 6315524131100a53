"""Tiny data and encoders for the cache tests: sklearn digits (8x8 grey), raw pixels as embeddings."""

import hashlib
from pathlib import Path

import pytest
import torch

from lbench.data import Digits
from lbench.encoders import PixelEncoder


class CountingEncoder(PixelEncoder):
    """Pixels, counting forward calls and the rows they embed."""

    def __init__(self, **kw):
        super().__init__(native_size=8, **kw)
        self.calls = 0
        self.rows = 0

    def forward(self, x):
        self.calls += 1
        self.rows += len(x)
        return super().forward(x)


class NaNEncoder(CountingEncoder):
    """Pixels, but NaN for the items whose first pixel row is all zero after a given call."""

    def __init__(self, bad_from_call=3):
        super().__init__()
        self.bad_from_call = bad_from_call

    def forward(self, x):
        z = super().forward(x)
        if self.calls >= self.bad_from_call:
            z = z.clone()
            z[0, 0] = float("nan")
        return z


@pytest.fixture(scope="session")
def digits():
    """(pool split, test split) of sklearn digits (1258 and 539 items)."""
    data = Digits()
    return data.pool_split(), data.test_split()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def store_digests(store) -> list[str]:
    """SHA-256 of every view file of a store, in view order."""
    return [file_digest(store.path(v)) for v in range(store.num_views)]


def pixels(split) -> torch.Tensor:
    return torch.stack([split[i][0].flatten() for i in range(len(split))])
