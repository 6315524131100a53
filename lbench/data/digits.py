"""scikit-learn's 8x8 digits (1797 images, shipped in the wheel): the smoke-test data set.

The 115 KB of pixels live in memory (:class:`~lbench.data.base.ArraySplit`); the content hash is a
digest of them (cheap at this size).
"""

from __future__ import annotations

import numpy as np
import torch

from lbench.data.base import ArraySplit, PoolDataset

__all__ = ["Digits"]


class Digits(PoolDataset):
    """sklearn ``load_digits`` as a pool and a stratified test split.

    Args:
        test_fraction: Fraction of each class held out for the test split.
        seed: Seed of the split.
    """

    class_names = tuple(str(d) for d in range(10))

    def __init__(self, test_fraction: float = 0.3, seed: int = 0) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        self.test_fraction = test_fraction
        self.seed = seed

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
        rng = np.random.default_rng(self.seed)
        test = np.zeros(len(d.target), dtype=bool)
        for c in range(10):
            idx = np.flatnonzero(d.target == c)
            test[rng.choice(idx, size=round(len(idx) * self.test_fraction), replace=False)] = True
        return images, d.target.astype(np.int64), test

    def _split(self, split: str) -> ArraySplit:
        images, targets, test = self._arrays()
        mask = test if split == "test" else ~test
        return ArraySplit(
            name=f"digits-{split}",
            images=torch.from_numpy(images[mask]).unsqueeze(1).contiguous(),
            targets=torch.from_numpy(targets[mask]),
            fingerprint={"dataset": "digits", "split": split, "test_fraction": self.test_fraction, "seed": self.seed},
        )

    def pool_split(self) -> ArraySplit:
        """The pool (train part)."""
        return self._split("train")

    def test_split(self) -> ArraySplit:
        """The stratified test part."""
        return self._split("test")
