"""Raw pixels as embeddings: the no-model baseline, and a fast encoder for smoke runs."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lbench.encoders.base import Encoder, ImageTransform

__all__ = ["PixelEncoder"]


class PixelEncoder(Encoder):
    """Flattened pixels in ``[0, 1]`` (optionally resized): ``D = channels * size * size``.

    Args:
        image_size: Resize to this side first (bilinear, antialiased; None keeps the native size).
        channels: Expected number of image channels.
        native_size: Native side of the images (used for ``embed_dim`` when ``image_size`` is None).
    """

    def __init__(self, image_size: int | None = None, channels: int = 1, native_size: int = 28) -> None:
        super().__init__()
        self.image_size = image_size
        self.channels = channels
        side = image_size or native_size
        self.embed_dim = channels * side * side
        self.transform = ImageTransform(image_size, channels=None)
        self.set_trainable(False)

    def forward(self, x: Tensor) -> Tensor:
        """Flatten."""
        if x.shape[1] * x.shape[2] * x.shape[3] != self.embed_dim:
            raise ValueError(f"PixelEncoder expects {self.embed_dim} values per image, got {tuple(x.shape[1:])}")
        return x.flatten(1)

    def identity(self) -> dict[str, Any]:
        """Size and channels (no weights)."""
        return {"encoder": "pixels", "weights": None, "image_size": self.image_size, "channels": self.channels}
