"""open_clip image towers (CLIP, CoCa, ...) behind the Encoder interface, and a zero-shot head.

``pretrained`` is a hub tag (``openai``, ``laion2b_s34b_b79k``: needs network access), a local
checkpoint file (``.pt``/``.bin``/``.safetensors``), or None for a seeded random initialisation.
``model_name`` may be ``local-dir:/path`` (a folder with ``open_clip_config.json`` and the
weights). A custom architecture can be registered from a JSON file with ``model_config``.

Preprocessing follows the tower's own config (``preprocess_cfg``: mean, std, interpolation) at its
input size; the whole image is resized to the square input (no centre crop), grey replicated to
RGB. The text tower is kept (outside the module tree, frozen, on the CPU) for
:func:`clip_zero_shot_head`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lbench.encoders.base import Encoder, ImageTransform, file_sha256, one_line, seeded, state_dict_sha256
from lbench.errors import ConfigError, DataError

__all__ = ["DEFAULT_TEMPLATES", "OpenCLIPEncoder", "clip_zero_shot_head"]

#: Prompt templates for :func:`clip_zero_shot_head` (a subset of CLIP's ImageNet ensemble).
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "a low resolution photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
)


class OpenCLIPEncoder(Encoder):
    """The image tower of an open_clip model (frozen, or trainable end to end).

    Args:
        model_name: An open_clip architecture (``ViT-B-32``), or ``local-dir:/path``.
        pretrained: Hub tag, local checkpoint file, or None (random weights, seeded).
        model_config: Optional JSON file defining ``model_name`` (registered with open_clip).
        normalize: L2-normalise the embeddings (CLIP's convention).
        seed: Seed of the random initialisation.
        trainable: Keep gradients on for end-to-end fine-tuning of the image tower.

    Raises:
        ConfigError: Unknown architecture.
        DataError: A checkpoint that is missing, cannot be fetched or does not fit.
    """

    code_version = 1

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        model_config: str | None = None,
        normalize: bool = True,
        seed: int = 0,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        import open_clip

        if model_config is not None:
            _register_config(model_name, model_config)
        self.model_name = model_name
        self.pretrained = pretrained
        self.model_config = model_config
        self.normalize = normalize
        self.seed = seed
        local_dir = model_name.startswith("local-dir:")
        if model_name not in open_clip.list_models() and not local_dir and not model_name.startswith("hf-hub:"):
            raise ConfigError(f"unknown open_clip model {model_name!r} (see open_clip.list_models())")
        is_file = bool(pretrained) and not local_dir and _looks_like_path(str(pretrained))
        if is_file and not os.path.isfile(str(pretrained)):
            raise DataError(f"open_clip checkpoint file {pretrained} does not exist")
        try:
            with seeded(seed):
                model = open_clip.create_model(model_name, pretrained=None if local_dir else pretrained)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            what = f"checkpoint {pretrained} does not fit" if is_file else f"cannot load weights {pretrained!r} for"
            raise DataError(
                f"open_clip {what} {model_name}: {one_line(e)}"
                + ("" if is_file else ". Offline, pass a local checkpoint file as pretrained")
            ) from e
        model.eval().requires_grad_(False)
        self.visual = model.visual
        self.__dict__["_clip"] = model  # the whole model (text tower included), not a submodule
        cfg = getattr(self.visual, "preprocess_cfg", {}) or {}
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        interpolation = cfg.get("interpolation", "bicubic")
        self.transform = ImageTransform(
            self.image_size,
            tuple(float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
            tuple(float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD)),
            interpolation if interpolation in ("bilinear", "bicubic") else "bicubic",
        )
        self.mean, self.std = self.transform.mean, self.transform.std
        self.embed_dim = int(getattr(self.visual, "output_dim", 0) or model.text_projection.shape[1])
        if local_dir:
            self._weights: dict[str, Any] = {
                "source": "local-dir",
                "sha256": _dir_hash(model_name.removeprefix("local-dir:")),
            }
        elif is_file:
            self._weights = {"source": "file", "sha256": file_sha256(str(pretrained))}
        elif pretrained:
            self._weights = {"source": "hub", "tag": pretrained, "sha256": state_dict_sha256(self.visual)}
        else:
            self._weights = {"source": "random", "seed": seed, "sha256": state_dict_sha256(self.visual)}
        self.set_trainable(trainable)

    @property
    def clip_model(self) -> nn.Module:
        """The whole open_clip model (its image tower is :attr:`visual`)."""
        return self.__dict__["_clip"]

    def forward(self, x: Tensor) -> Tensor:
        """Image embeddings ``[B, embed_dim]``."""
        z = self.visual(x)
        if isinstance(z, tuple):  # CoCa-style towers return (pooled, tokens)
            z = z[0]
        return F.normalize(z, dim=-1) if self.normalize else z

    def identity(self) -> dict[str, Any]:
        """Architecture, weights identity, L2 normalisation."""
        return {
            "encoder": "open_clip",
            "model_name": self.model_name,
            "weights": self._weights,
            "image_size": self.image_size,
            "l2_normalize": self.normalize,
        }


@torch.no_grad()
def clip_zero_shot_head(
    encoder: OpenCLIPEncoder, class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> Tensor:
    """Zero-shot classifier weights from class names: ``[K, D]``, rows L2-normalised.

    Each class name fills every template (``"a photo of a {}."``); the text tower embeds the
    prompts, each is L2-normalised, the class's prompts are averaged and the mean is normalised
    again (CLIP's prompt ensembling). ``logit_scale * normalize(image_embedding) @ head.T`` gives
    CLIP's zero-shot logits. The text tower runs on the CPU; the head is returned on the image
    tower's device.

    Args:
        encoder: An :class:`OpenCLIPEncoder` (its text tower is used).
        class_names: The ``K`` class names, in label order.
        templates: Prompt templates, each with one ``{}`` for the class name.

    Raises:
        ConfigError: No class names or templates, or a template without ``{}``.
    """
    import open_clip

    if not class_names:
        raise ConfigError("clip_zero_shot_head needs at least one class name")
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError("clip_zero_shot_head templates must be non-empty and each contain '{}'")
    model = encoder.clip_model
    tokenizer = open_clip.get_tokenizer(encoder.model_name)
    text_device = next(p.device for n, p in model.named_parameters() if not n.startswith("visual."))
    heads = []
    for name in class_names:
        tokens = tokenizer([t.format(name) for t in templates]).to(text_device)
        z = F.normalize(model.encode_text(tokens).float(), dim=-1)
        heads.append(F.normalize(z.mean(0), dim=-1))
    device = next(encoder.visual.parameters()).device
    return torch.stack(heads).to(device)


def _looks_like_path(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
        or os.path.exists(pretrained)
    )


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
