"""The Encoder interface: images in ``[0, 1]`` -> embeddings ``[B, D]``."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Encoder", "file_sha256", "to_rgb_resized"]


class Encoder(nn.Module, ABC):
    """A frozen (or fine-tunable) image backbone behind one interface.

    Subclasses build their network in ``__init__`` (cheap for the tiny test configs) and implement
    :meth:`preprocess` (resize, channels, normalisation, on batches of tensors), :meth:`forward`
    (preprocessed batch -> features) and :meth:`fingerprint` (everything that changes the
    embeddings: architecture, weights hash, input size, normalisation, feature layers).
    """

    #: Dimension of the embeddings.
    embed_dim: int

    @abstractmethod
    def preprocess(self, images: Tensor) -> Tensor:
        """Turn ``[B, C, H, W]`` float images in ``[0, 1]`` into the network's input."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Embed a preprocessed batch: ``[B, D]``."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable identity of the embeddings this encoder produces."""

    @torch.inference_mode()
    def encode(self, images: Tensor) -> Tensor:
        """Preprocess and embed a batch of ``[0, 1]`` images (no grad)."""
        return self(self.preprocess(images))


def to_rgb_resized(images: Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Replicate grey to 3 channels, resize (bilinear, antialiased) to ``size``, normalise."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (16 hex) of a weights file, cached per (path, size, mtime)."""
    st = os.stat(path)
    return _sha256(os.fspath(path), st.st_size, st.st_mtime_ns)


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
