"""open_clip image towers (CLIP, CoCa, ...) behind the Encoder interface.

``pretrained`` is a hub tag (``openai``, ``laion2b_s34b_b79k``: needs network access), a local
checkpoint file (``.pt``/``.bin``/``.safetensors``), or None for random weights. ``model_name``
may be ``local-dir:/path`` (a folder with ``open_clip_config.json`` and the weights). A custom
architecture can be registered from a JSON file with ``model_config``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from lbench.encoders.base import Encoder, file_sha256, to_rgb_resized
from lbench.errors import ConfigError, DataError

__all__ = ["OpenCLIPEncoder"]


class OpenCLIPEncoder(Encoder):
    """The image tower of an open_clip model.

    Args:
        model_name: An open_clip architecture (``ViT-B-32``), or ``local-dir:/path``.
        pretrained: Hub tag, local checkpoint file, or None (random weights).
        model_config: Optional JSON file defining ``model_name`` (registered with open_clip).
        normalize: L2-normalise the embeddings (CLIP's convention).
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        model_config: str | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        import open_clip

        if model_config is not None:
            _register_config(model_name, model_config)
        self.model_name = model_name
        self.pretrained = pretrained
        self.model_config = model_config
        self.normalize = normalize
        local_dir = model_name.startswith("local-dir:")
        if model_name not in open_clip.list_models() and not local_dir and not model_name.startswith("hf-hub:"):
            raise ConfigError(f"unknown open_clip model {model_name!r} (see open_clip.list_models())")
        try:
            model = open_clip.create_model(model_name, pretrained=None if local_dir else pretrained)
        except RuntimeError as e:
            raise DataError(
                f"cannot load open_clip weights {pretrained!r} for {model_name}: {e}. "
                "Offline, pass a local checkpoint file as pretrained"
            ) from e
        self.visual = model.visual.eval().requires_grad_(False)
        cfg = getattr(self.visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.embed_dim = int(getattr(self.visual, "output_dim", 0) or model.text_projection.shape[1])
        if local_dir:
            self._weights_id = "local-dir:" + _dir_hash(model_name.removeprefix("local-dir:"))
        elif pretrained and os.path.isfile(pretrained):
            self._weights_id = file_sha256(pretrained)
        else:
            self._weights_id = pretrained or "random"

    def preprocess(self, images: Tensor) -> Tensor:
        """Grey -> RGB, resize to the tower's input size, CLIP normalisation."""
        return to_rgb_resized(images, self.image_size, self.mean, self.std)

    def forward(self, x: Tensor) -> Tensor:
        """Image embeddings ``[B, embed_dim]``."""
        z = self.visual(x)
        if isinstance(z, tuple):  # CoCa-style towers return (pooled, tokens)
            z = z[0]
        return F.normalize(z, dim=-1) if self.normalize else z

    def fingerprint(self) -> dict[str, Any]:
        """Architecture, weights identity, input size, normalisation."""
        return {
            "encoder": "open_clip",
            "model_name": self.model_name,
            "weights": self._weights_id,
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "l2_normalize": self.normalize,
        }


def _register_config(model_name: str, path: str) -> None:
    import open_clip

    src = Path(path)
    if not src.is_file():
        raise DataError(f"open_clip model config {path} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix="lbench-openclip-"))
    shutil.copy(src, tmp / f"{model_name}.json")
    open_clip.add_model_config(tmp)


def _dir_hash(folder: str) -> str:
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if not files:
        raise DataError(f"open_clip local-dir {folder} is empty")
    return "-".join(file_sha256(p) for p in files)
