"""Raw pixels as embeddings: the no-model baseline, and a fast encoder for smoke runs."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from lbench.encoders.base import Encoder

__all__ = ["PixelEncoder"]


class PixelEncoder(Encoder):
    """Flattened pixels in ``[0, 1]`` (optionally resized): ``D = channels * size * size``.

    Args:
        image_size: Resize to this side first (None keeps the native size).
        channels: Expected number of image channels.
        native_size: Native side of the images (used for ``embed_dim`` when ``image_size`` is None).
    """

    def __init__(self, image_size: int | None = None, channels: int = 1, native_size: int = 28) -> None:
        super().__init__()
        self.image_size = image_size
        self.channels = channels
        side = image_size or native_size
        self.embed_dim = channels * side * side

    def preprocess(self, images: Tensor) -> Tensor:
        """Resize when asked."""
        if self.image_size is not None and images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size,) * 2, mode="bilinear", antialias=True)
        return images

    def forward(self, x: Tensor) -> Tensor:
        """Flatten."""
        if x.shape[1] * x.shape[2] * x.shape[3] != self.embed_dim:
            raise ValueError(f"PixelEncoder expects {self.embed_dim} values per image, got {tuple(x.shape[1:])}")
        return x.flatten(1)

    def fingerprint(self) -> dict[str, Any]:
        """Size and channels."""
        return {"encoder": "pixels", "image_size": self.image_size, "channels": self.channels}
