"""FineTuneClassifier: end-to-end fine-tuning of a pretrained image encoder with a linear head.

Batches carry images ``x`` ``[B, C, H, W]`` in ``[0, 1]`` (grey or RGB); the encoder's own
:class:`~lbench.encoders.base.ImageTransform` converts channels, resizes and normalises them (the
model's own data config, as in timm and open_clip). The encoder is made trainable and trained
with the head: AdamW with a smaller learning rate for the backbone than for the head, a linear
warm-up then a cosine decay to 0 (per optimizer step), optionally an exponential moving average
(EMA) of the weights for evaluation, a CLIP zero-shot initialisation of the head, and FlexMatch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, cast

import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn
from torch.optim import Optimizer
from typing_extensions import override

from lbench.encoders.base import Encoder
from lbench.encoders.open_clip import OpenCLIPEncoder, clip_zero_shot_head
from lbench.errors import ConfigError
from lbench.modules.base import BaseTask
from lbench.ssl.flexmatch import FlexMatch

__all__ = ["FineTuneClassifier", "delayed_warmup_cosine", "warmup_cosine"]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor of optimizer step ``step`` (0-based): linear warm-up, then cosine to 0.

    ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (the last warm-up step reaches the
    full rate), then ``0.5 * (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps)))``,
    which is 1 at the first step after the warm-up and 0 at ``total_steps`` (and after).

    Args:
        step: Number of optimizer steps taken so far.
        warmup_steps: Length of the warm-up (0: none).
        total_steps: Number of optimizer steps of the whole schedule (``> warmup_steps``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def delayed_warmup_cosine(step: int, start: int, warmup_steps: int, total_steps: int) -> float:
    """0 for the first ``start`` steps, then :func:`warmup_cosine` of ``step - start``."""
    return 0.0 if step < start else warmup_cosine(step - start, warmup_steps, total_steps)


class FineTuneClassifier(BaseTask):
    """A pretrained encoder and a linear head, fine-tuned end to end.

    :meth:`features` is the encoder's :meth:`~lbench.encoders.base.Encoder.encode` (preprocessing
    included; the encoder is set trainable here, even if it was built frozen), :meth:`classify` a
    linear head. The head is built in :meth:`configure_models` (from Lightning's
    ``configure_model``), so ``num_classes`` and ``class_names`` can come from the DataModule
    (``num_classes``, ``dataset.class_names``) when left as None. Training is supervised, or
    FlexMatch with ``ssl`` (batches as described in :mod:`lbench.modules.base`, with images).

    Optimisation: AdamW with two parameter groups, ``backbone`` (the encoder's trainable
    parameters, ``backbone_lr``) and ``head`` (``head_lr``), both with ``weight_decay``; the rates
    follow :func:`warmup_cosine` over ``trainer.estimated_stepping_batches`` optimizer steps, with
    ``floor(warmup_fraction * steps)`` warm-up steps, stepped after every optimizer step.

    EMA (``ema_decay`` set): a copy of the encoder and head (:attr:`ema`, outside the optimiser)
    starts from the initial weights; after every optimizer step each of its parameters becomes
    ``ema_decay * ema + (1 - ema_decay) * live`` and its buffers (batch-norm statistics) are copied
    from the live model. In eval mode (validation, test, predict, or after ``.eval()``)
    :meth:`features` and :meth:`classify` use the EMA weights; in train mode the live ones. The
    copy is part of the state dict, so checkpoints save and restore it. It costs a second copy of
    the encoder's weights; modules held outside the module tree (OpenCLIP's text tower) are
    shared with the live encoder, not copied.

    Zero-shot head (``zero_shot_head=True``, :class:`~lbench.encoders.open_clip.OpenCLIPEncoder`
    only): the head weight starts as CLIP's zero-shot classifier
    (:func:`~lbench.encoders.open_clip.clip_zero_shot_head`) times the model's logit scale
    (``clip_model.logit_scale.exp()``), the bias at 0, so the untrained module gives CLIP's
    zero-shot logits (with the encoder's default L2-normalised embeddings).

    Training runs in train mode (dropout, batch-norm batch statistics, unless ``freeze_norm``):
    :meth:`on_fit_start` sets it, as Lightning keeps the modes it finds and encoders are built in
    eval mode. With ``head_only_fraction``, the first steps train the head on the frozen encoder
    (a randomly initialised head's large early gradients would otherwise distort the pretrained
    features; Kumar et al., 2022). Mixed
    precision is the Trainer's ``precision`` (``bf16-mixed``, ``16-mixed``).

    The encoder is not a hyperparameter (it is a module): rebuild it for
    ``FineTuneClassifier.load_from_checkpoint(path, encoder=...)`` with the same architecture; its
    weights (and the head and EMA) then come from the checkpoint.

    Args:
        encoder: The image encoder to fine-tune (made trainable).
        num_classes: Number of classes (None = from the DataModule).
        backbone_lr: Peak AdamW learning rate of the encoder.
        head_lr: Peak AdamW learning rate of the linear head.
        weight_decay: AdamW weight decay (both groups).
        warmup_fraction: Fraction of the optimizer steps spent in the linear warm-up, in [0, 1).
        zero_shot_head: Initialise the head from CLIP's text tower and the class names (needs an
            OpenCLIPEncoder).
        class_names: Class names in label order, for ``zero_shot_head`` (None = from the
            DataModule's ``dataset.class_names``).
        ema_decay: Decay of the exponential moving average of the weights used for evaluation,
            in (0, 1); None for no EMA.
        freeze_norm: Keep the encoder's batch-norm layers in eval mode while training: they
            normalise with the pretrained running statistics (and do not update them); their
            affine weights still train. For small labeled sets and batches.
        head_only_fraction: Fraction of the optimizer steps, at the start, that train the head
            alone on the frozen encoder (in eval mode, without gradients: "LP-FT", linear probe
            then fine-tune); the backbone's warm-up and cosine schedule start after them.
        ssl: Semi-supervised component (FlexMatch); None for supervised training.
    """

    ignore: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int | None = None,
        backbone_lr: float = 1e-4,
        head_lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_fraction: float = 0.1,
        zero_shot_head: bool = False,
        class_names: list[str] | None = None,
        ema_decay: float | None = None,
        freeze_norm: bool = False,
        head_only_fraction: float = 0.0,
        ssl: FlexMatch | None = None,
    ) -> None:
        super().__init__(ssl=ssl)
        if not isinstance(encoder, Encoder):
            raise ConfigError(f"FineTuneClassifier needs an Encoder, got {type(encoder).__name__}")
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 2):
            raise ConfigError(f"num_classes must be at least 2 (or null), got {num_classes}")
        if backbone_lr <= 0 or head_lr <= 0:
            raise ConfigError(f"backbone_lr and head_lr must be positive, got {backbone_lr} and {head_lr}")
        if weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
        if not 0 <= warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) or null, got {ema_decay}")
        if not 0 <= head_only_fraction < 1:
            raise ConfigError(f"head_only_fraction must be in [0, 1), got {head_only_fraction}")
        if class_names is not None:
            if len(class_names) == 0:
                raise ConfigError("class_names must be non-empty (or null)")
            if num_classes is not None and len(class_names) != num_classes:
                raise ConfigError(f"{len(class_names)} class_names for num_classes={num_classes}")
        if zero_shot_head and not isinstance(encoder, OpenCLIPEncoder):
            raise ConfigError(
                f"zero_shot_head needs an OpenCLIPEncoder (CLIP's text tower), got {type(encoder).__name__}"
            )
        encoder.set_trainable(True)
        self.encoder = encoder
        self.head: nn.Linear | None = None
        self.ema: nn.ModuleDict | None = None

    # -- building ------------------------------------------------------------------------------
    def configure_models(self) -> None:
        """Build the head (zero-shot initialised if asked) and the EMA copy; sizes from the DataModule."""
        dm = self._datamodule()
        k = self.hparams.num_classes or getattr(dm, "num_classes", None)
        if k is None:
            raise ConfigError("FineTuneClassifier needs num_classes (or a DataModule that provides it)")
        k = int(k)
        names = self.hparams.class_names
        if names is None and self.hparams.zero_shot_head:
            names = getattr(getattr(dm, "dataset", None), "class_names", None) or None
            if names is None:
                raise ConfigError(
                    "zero_shot_head needs class names: set class_names or use a DataModule whose dataset has them"
                )
        if names is not None and len(names) != k:
            raise ConfigError(f"{len(names)} class names for {k} classes: they must agree")
        self.hparams.num_classes = k
        if names is not None:
            self.hparams.class_names = [str(n) for n in names]
        self.head = nn.Linear(self.encoder.embed_dim, k)
        if self.hparams.zero_shot_head:
            self._init_zero_shot_head(self.hparams.class_names)
        if self.hparams.ema_decay is not None:
            self.ema = self._ema_copy()

    def _init_zero_shot_head(self, class_names: list[str]) -> None:
        encoder = cast(OpenCLIPEncoder, self.encoder)
        assert self.head is not None
        # the text tower lives on the CPU, whatever default device Lightning's init context sets
        with torch.device("cpu"):
            weight = clip_zero_shot_head(encoder, class_names)
            scale = encoder.clip_model.logit_scale.detach().exp()
        with torch.no_grad():
            self.head.weight.copy_(weight.to(scale.device) * scale)
            self.head.bias.zero_()

    def _ema_copy(self) -> nn.ModuleDict:
        live = nn.ModuleDict({"encoder": self.encoder, "head": self.head})
        # modules referenced outside the module tree (OpenCLIP's whole model, text tower included)
        # are not parameters of the model: share them instead of copying
        memo: dict[int, Any] = {id(v): v for m in live.modules() for v in vars(m).values() if isinstance(v, nn.Module)}
        ema = copy.deepcopy(live, memo)
        ema.requires_grad_(False)
        return ema

    # -- forward -------------------------------------------------------------------------------
    def _uses_ema(self) -> bool:
        return self.ema is not None and not self.training

    def _head_only_steps(self) -> int:
        """Optimizer steps at the start of training that train the head alone."""
        if self.hparams.head_only_fraction == 0 or self._trainer is None:
            return 0
        total = self.trainer.estimated_stepping_batches
        return int(self.hparams.head_only_fraction * total) if math.isfinite(total) else 0

    def features(self, x: Tensor) -> Tensor:
        """Embeddings of ``[0, 1]`` images (the encoder's preprocessing and forward; EMA weights in eval mode)."""
        encoder = cast(Encoder, self.ema["encoder"]) if self._uses_ema() else self.encoder
        if self.training and self.global_step < self._head_only_steps():
            mode = encoder.training
            encoder.eval()
            try:
                with torch.no_grad():
                    return encoder.encode(x)
            finally:
                if mode:
                    self.train(True)  # back to train mode (batch norm frozen again with freeze_norm)
        return encoder.encode(x)

    @override
    def train(self, mode: bool = True) -> FineTuneClassifier:
        """Set train/eval mode; with ``freeze_norm`` the encoder's batch-norm layers stay in eval mode."""
        super().train(mode)
        if mode and self.hparams.get("freeze_norm"):
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def classify(self, h: Tensor) -> Tensor:
        """Logits from embeddings (the linear head; EMA weights in eval mode)."""
        assert self.head is not None
        head = self.ema["head"] if self._uses_ema() else self.head
        return head(h)

    # -- training ------------------------------------------------------------------------------
    @override
    def on_fit_start(self) -> None:
        """Train mode for the whole module (Lightning keeps the modes it finds; the encoder starts in eval)."""
        super().on_fit_start()
        self.train()

    # -- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (``backbone`` and ``head`` groups) with a per-step warm-up + cosine schedule."""
        assert self.head is not None
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ConfigError(
                "FineTuneClassifier's learning-rate schedule needs a finite number of training steps: "
                "set the trainer's max_steps or max_epochs"
            )
        total = int(total)
        warmup = int(self.hparams.warmup_fraction * total)
        head_only = self._head_only_steps()
        backbone_warmup = int(self.hparams.warmup_fraction * (total - head_only))
        groups = [
            {
                "name": "backbone",
                "params": [p for p in self.encoder.parameters() if p.requires_grad],
                "lr": self.hparams.backbone_lr,
            },
            {"name": "head", "params": list(self.head.parameters()), "lr": self.hparams.head_lr},
        ]
        schedules = {
            "backbone": partial(delayed_warmup_cosine, start=head_only, warmup_steps=backbone_warmup,
                                total_steps=total - head_only),
            "head": partial(warmup_cosine, warmup_steps=warmup, total_steps=total),
        }  # fmt: skip
        groups = [g for g in groups if g["params"]]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, [schedules[g["name"]] for g in groups])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}

    @override
    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: Optimizer | LightningOptimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        """The optimizer step, then the EMA update."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.ema is not None:
            self.update_ema()

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema = decay * ema + (1 - decay) * live`` for every parameter; buffers copied."""
        assert self.ema is not None and self.head is not None
        weight = 1.0 - float(self.hparams.ema_decay)
        for name, live in (("encoder", self.encoder), ("head", self.head)):
            ema = self.ema[name]
            ema_params, live_params = list(ema.parameters()), list(live.parameters())
            if len(ema_params) != len(live_params):
                raise RuntimeError(f"the EMA copy of the {name} does not match the live model")
            if ema_params:
                torch._foreach_lerp_(ema_params, live_params, weight)
            for e, b in zip(ema.buffers(), live.buffers(), strict=True):
                e.copy_(b)
