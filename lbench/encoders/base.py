"""The Encoder interface: images in ``[0, 1]`` -> embeddings ``[B, D]``.

An encoder is frozen (the default: parameters without gradients, always in eval mode, ``encode``
under ``torch.inference_mode``) for caching embeddings, or trainable (``trainable=True``:
gradients on, ``train()``/``eval()`` respected) for end-to-end fine-tuning.

Its :meth:`Encoder.fingerprint` identifies the embeddings it produces: the architecture and
features, the weights (a file's SHA-256; for weights that are not a file, the init seed and a
hash of the state dict), the preprocessing (:class:`ImageTransform`, the same object that does
the preprocessing, so the two cannot drift apart) and a code version. A change to any of them
changes the fingerprint, so a cache keyed by it is rebuilt rather than reused.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lbench.data.manifest import file_sha256
from lbench.errors import ConfigError

__all__ = [
    "ENCODER_CODE_VERSION",
    "Encoder",
    "ImageTransform",
    "file_sha256",
    "one_line",
    "seeded",
    "state_dict_sha256",
    "to_rgb_resized",
]

#: Version of the shared encoder code (this module's preprocessing). Bump it when a change here
#: alters the embeddings of existing configurations; each encoder class has its own
#: ``code_version`` for changes in its own file.
ENCODER_CODE_VERSION = 1

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class ImageTransform:
    """Batch preprocessing of ``[B, C, H, W]`` images in ``[0, 1]``: channels, resize, normalise.

    Attributes:
        size: Output side in pixels (square); None keeps the input size.
        mean: Per-channel mean subtracted (None: no normalisation).
        std: Per-channel std divided by.
        interpolation: ``bilinear``, ``bicubic`` or ``nearest`` (``F.interpolate`` mode).
        antialias: Antialias when downsampling (bilinear/bicubic only).
        channels: Output channels: 3 replicates grey images to RGB; None keeps the channels.
    """

    size: int | None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    antialias: bool = True
    channels: int | None = 3

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("mean and std go together")

    def __call__(self, images: Tensor) -> Tensor:
        """Apply to a batch ``[B, C, H, W]``."""
        if self.channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        size = self.size
        if size is not None and images.shape[-2:] != (size, size):
            if self.interpolation == "nearest":
                images = F.interpolate(images, size=(size, size), mode="nearest")
            else:
                images = F.interpolate(
                    images, size=(size, size), mode=self.interpolation, align_corners=False, antialias=self.antialias
                )
        if self.mean is not None and self.std is not None:
            m = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
            s = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
            images = (images - m) / s
        return images

    def spec(self) -> dict[str, Any]:
        """JSON form (for fingerprints)."""
        d = asdict(self)
        for k in ("mean", "std"):
            d[k] = None if d[k] is None else [float(v) for v in d[k]]
        if self.interpolation == "nearest":
            d["antialias"] = False
        return d


class Encoder(nn.Module, ABC):
    """A frozen (or fine-tunable) image backbone behind one interface.

    Subclasses build their network in ``__init__`` (cheap for the tiny test configs), set
    ``embed_dim`` and ``transform`` (their :class:`ImageTransform`), implement :meth:`forward`
    (preprocessed batch -> features) and :meth:`identity` (architecture, features, weights), and
    call :meth:`set_trainable` at the end of ``__init__``.

    Attributes:
        embed_dim: Dimension of the embeddings.
        transform: The preprocessing applied by :meth:`preprocess`.
        trainable: Whether gradients flow (end-to-end fine-tuning) or the encoder is frozen.
        code_version: Version of the subclass's code; bump it when an edit changes embeddings.
    """

    embed_dim: int
    transform: ImageTransform
    trainable: bool = False
    code_version: ClassVar[int] = 1

    def preprocess(self, images: Tensor) -> Tensor:
        """Turn ``[B, C, H, W]`` float images in ``[0, 1]`` into the network's input."""
        return self.transform(images)

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Embed a preprocessed batch: ``[B, D]``."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON identity of the network: ``encoder`` (architecture), ``weights``, features."""

    def preprocess_spec(self) -> dict[str, Any]:
        """JSON description of :meth:`preprocess` (the transform's spec)."""
        return self.transform.spec()

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable identity of the embeddings this encoder produces.

        :meth:`identity` plus the preprocessing spec and the code version
        (``"<ENCODER_CODE_VERSION>.<code_version>"``).
        """
        return {
            **self.identity(),
            "preprocess": self.preprocess_spec(),
            "code_version": f"{ENCODER_CODE_VERSION}.{self.code_version}",
        }

    def set_trainable(self, trainable: bool) -> None:
        """Frozen: no gradients, eval mode for good. Trainable: gradients on, mode as set."""
        self.trainable = bool(trainable)
        self.requires_grad_(self.trainable)
        self.train(False)

    def train(self, mode: bool = True) -> Encoder:
        """Set train mode; a frozen encoder stays in eval mode (fixed BN statistics, no dropout)."""
        return super().train(mode and self.trainable)

    def encode(self, images: Tensor) -> Tensor:
        """Preprocess and embed a batch of ``[0, 1]`` images: ``[B, embed_dim]``.

        Frozen encoders run under ``torch.inference_mode``; trainable ones keep the autograd
        graph (gradients reach the backbone).
        """
        if self.trainable:
            return self(self.preprocess(images))
        with torch.inference_mode():
            return self(self.preprocess(images))


def to_rgb_resized(images: Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Replicate grey to 3 channels, resize (bilinear, antialiased) to ``size``, normalise."""
    return ImageTransform(size, tuple(mean), tuple(std))(images)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block and restore the global state after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 (16 hex) of a module's state dict (names, dtypes, shapes, bytes), in key order."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()[:16]


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed), cut to ``limit`` characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
