"""Any timm model as an encoder, with timm's own data config (input size, interpolation, mean/std).

Weights come from a local checkpoint file (``checkpoint_path``: ``.pth``/``.pt``/``.bin``/
``.safetensors``, a plain or nested state dict, loaded strictly after the model's own checkpoint
filter, e.g. position-embedding resampling for ViTs at another ``image_size``), from the hub
(``pretrained=True``: needs network access), or a seeded random initialisation. The classifier
is removed (``num_classes=0``): embeddings are the pooled pre-logits features.

Preprocessing resizes the whole image to the model's square input (no centre crop: small
pool images such as 28 px Fashion-MNIST keep all their pixels), with the data config's
interpolation (antialiased) and mean/std; grey images are replicated to RGB.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from torch import Tensor, nn

from lbench.encoders.base import Encoder, ImageTransform, file_sha256, one_line, seeded, state_dict_sha256
from lbench.errors import ConfigError, DataError

__all__ = ["TimmEncoder"]


class TimmEncoder(Encoder):
    """The pooled features of a timm model.

    Args:
        model_name: A timm architecture (``vit_small_patch16_224``, ``convnext_tiny``, ...;
            see ``timm.list_models()``), or ``hf-hub:org/repo``.
        checkpoint_path: A local weights file; wins over random weights.
        pretrained: Load timm's pretrained weights from the hub (online only). Exclusive with
            ``checkpoint_path``.
        image_size: Input side in pixels (None: the data config's). ViT-like models with a
            fixed input size are built for it.
        seed: Seed of the random initialisation (the weights when neither of the above is set).
        trainable: Keep gradients on for end-to-end fine-tuning.
        global_pool: timm's pooling of the features (``avg``, ``max``, ``token``, ...; None: the
            model's default).

    Raises:
        ConfigError: Unknown model, or conflicting settings.
        DataError: A checkpoint file that is missing, unreadable or does not fit the model; hub
            weights that cannot be fetched.
    """

    code_version = 1

    def __init__(
        self,
        model_name: str,
        checkpoint_path: str | None = None,
        pretrained: bool = False,
        image_size: int | None = None,
        seed: int = 0,
        trainable: bool = False,
        global_pool: str | None = None,
    ) -> None:
        super().__init__()
        import timm

        hub = model_name.startswith(("hf-hub:", "hf_hub:"))
        if not hub and not timm.is_model(model_name):
            raise ConfigError(f"unknown timm model {model_name!r} (see timm.list_models())")
        if checkpoint_path is not None and pretrained:
            raise ConfigError("pass either checkpoint_path (a local file) or pretrained=True (the hub), not both")
        if image_size is not None and image_size <= 0:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        if checkpoint_path is not None and not os.path.isfile(checkpoint_path):
            raise DataError(f"timm checkpoint file {checkpoint_path} does not exist")
        self.model_name = model_name
        self.checkpoint_path = checkpoint_path
        self.pretrained = pretrained
        self.seed = seed
        self.global_pool = global_pool
        kwargs: dict[str, Any] = {"num_classes": 0}
        if global_pool is not None:
            kwargs["global_pool"] = global_pool
        if image_size is not None and _fixed_input_size(model_name):
            kwargs["img_size"] = image_size
        with seeded(seed):
            self.model = _create(model_name, pretrained, kwargs)
        if checkpoint_path is not None:
            _load_checkpoint(self.model, checkpoint_path, model_name)
            self._weights: dict[str, Any] = {"source": "file", "sha256": file_sha256(checkpoint_path)}
        elif pretrained:
            self._weights = {"source": "hub", "tag": model_name, "sha256": state_dict_sha256(self.model)}
        else:
            self._weights = {"source": "random", "seed": seed, "sha256": state_dict_sha256(self.model)}
        cfg = timm.data.resolve_model_data_config(self.model)
        self.image_size = int(image_size or cfg["input_size"][-1])
        interpolation = cfg.get("interpolation", "bicubic")
        self.transform = ImageTransform(
            self.image_size,
            tuple(float(v) for v in cfg["mean"]),
            tuple(float(v) for v in cfg["std"]),
            interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bicubic",
        )
        self.model.eval()
        with torch.inference_mode():
            probe = self.model(torch.zeros(1, 3, self.image_size, self.image_size))
        if probe.dim() != 2:
            raise ConfigError(f"timm model {model_name} gives {tuple(probe.shape)} features, not [B, D]")
        self.embed_dim = int(probe.shape[1])
        self.set_trainable(trainable)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled pre-logits features ``[B, embed_dim]``."""
        return self.model(x)

    def identity(self) -> dict[str, Any]:
        """Architecture, weights, pooling and input size."""
        return {
            "encoder": f"timm:{self.model_name}",
            "weights": self._weights,
            "image_size": self.image_size,
            "pooling": str(getattr(self.model, "global_pool", self.global_pool)),
            "global_pool": self.global_pool,
            "num_classes": 0,
        }


def _fixed_input_size(model_name: str) -> bool:
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(model_name.split(":", 1)[-1])
    except (RuntimeError, ValueError):  # pragma: no cover - hub names or unusual configs
        return False
    return bool(cfg is not None and getattr(cfg, "fixed_input_size", False))


def _create(model_name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise ConfigError(f"timm model {model_name} does not accept {sorted(kwargs)}: {e}") from e
    except (OSError, RuntimeError, ValueError) as e:
        if not pretrained:
            raise ConfigError(f"cannot build timm model {model_name}: {one_line(e)}") from e
        raise DataError(
            f"cannot load timm pretrained weights for {model_name}: {one_line(e)}. "
            "Offline, pass a local weights file as checkpoint_path"
        ) from e


def _load_checkpoint(model: nn.Module, path: str, model_name: str) -> None:
    """Load ``path`` strictly (after the model's checkpoint filter); one-line DataError if it does not fit."""
    from timm.models import load_state_dict

    try:
        sd = load_state_dict(path, device="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch/safetensors raise many types on a bad file
        raise DataError(f"cannot read timm checkpoint {path}: {one_line(e)}") from e
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            sd = filter_fn(sd, model)
        except Exception as e:  # noqa: BLE001 - a filter that cannot map this file: it does not fit
            raise DataError(f"timm checkpoint {path} does not fit {model_name}: {one_line(e)}") from e
    own = model.state_dict()
    classifier = model.pretrained_cfg.get("classifier") if hasattr(model, "pretrained_cfg") else None
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    sd = {k: v for k, v in sd.items() if k in own or not any(k.startswith(h + ".") for h in heads)}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)})")
        raise DataError(f"timm checkpoint {path} does not fit {model_name}: {', '.join(parts)}")
    model.load_state_dict(sd, strict=True)
