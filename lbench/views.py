"""Seeded views of an image for the embedding cache: plain, weak and strong, deterministic per item.

View 0 is *plain*: the image as the data set gives it, so the encoder's own preprocess (resize,
normalisation) is the only transform. A :class:`ViewRecipe` adds ``weak_views`` weak views
(:class:`WeakAugment`: random resized crop at the image's own resolution + horizontal flip) and
``strong_views`` strong views (:class:`StrongAugment`: RandAugment with a random magnitude per
op, then Cutout, as in FixMatch/FlexMatch, then the weak crop and flip), in that order::

    recipe = ViewRecipe(weak_views=2, strong_views=2, seed=0)
    recipe.names()            # ['plain', 'weak0', 'weak1', 'strong0', 'strong1']
    recipe.transform("weak1")(image, index=17)   # the same tensor on every call, in every process

Every random choice of a view of an item comes from a ``torch.Generator`` seeded by a hash of
``(seed, view name, index)`` (:func:`item_generator`), never from a global RNG, so a view does
not depend on the batch size, the worker count, the number of processes or the order items are
visited in; a rebuild gives the same bytes. The ops are torchvision v2 functionals on float
``[C, H, W]`` images in ``[0, 1]``.

:meth:`ViewRecipe.view_spec` is the stable, JSON-serialisable identity of one view (its
transform, seed and name); the embedding cache keys each view's file by it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

__all__ = ["StrongAugment", "ViewRecipe", "ViewTransform", "WeakAugment", "item_generator"]

#: Version of the view code: bump when a transform changes its output for the same spec.
VIEWS_VERSION = 1

_NEAREST = F.InterpolationMode.NEAREST


def item_generator(seed: int, view: str, index: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, view, index)`` alone (SHA-256, 63 bits)."""
    digest = hashlib.sha256(f"lbench.views/{seed}/{view}/{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, high: int) -> int:
    return int(torch.randint(high, (), generator=g))


@dataclass(frozen=True)
class WeakAugment:
    """Random resized crop (output at the input's size) + horizontal flip.

    Args:
        scale: Range of the crop's area, as a fraction of the image.
        ratio: Range of the crop's aspect ratio (sampled log-uniformly).
        flip: Probability of a horizontal flip.
    """

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable parameters."""
        return {"scale": list(self.scale), "ratio": list(self.ratio), "flip": self.flip}

    def crop_box(self, height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` as torchvision's RandomResizedCrop draws it (10 tries, then the centre)."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(g, *self.scale)
            aspect = math.exp(_uniform(g, *log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return _randint(g, height - h + 1), _randint(g, width - w + 1), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif in_ratio > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: Tensor, g: torch.Generator) -> Tensor:
        """Crop and flip a ``[C, H, W]`` image with randomness from ``g``."""
        height, width = image.shape[-2:]
        top, left, h, w = self.crop_box(height, width, g)
        out = F.resized_crop(image, top, left, h, w, [height, width], antialias=True)
        return F.horizontal_flip(out) if _uniform(g) < self.flip else out


def _factor(v: float) -> float:  # enhance factor in [0.05, 0.95], as FixMatch/FlexMatch
    return 0.05 + 0.9 * v


def _signed(v: float, limit: float) -> float:  # [-limit, limit]
    return (2.0 * v - 1.0) * limit


def _affine(
    img: Tensor, translate: tuple[float, float] = (0.0, 0.0), shear: tuple[float, float] = (0.0, 0.0)
) -> Tensor:
    return F.affine(img, angle=0.0, translate=list(translate), scale=1.0, shear=list(shear),
                    interpolation=_NEAREST, fill=0.0)  # fmt: skip


def _shear(v: float) -> float:  # shear factor in [-0.3, 0.3] -> degrees
    return math.degrees(math.atan(_signed(v, 0.3)))


#: The FixMatch/FlexMatch RandAugment pool: name -> op(image, magnitude in [0, 1]).
RAND_AUGMENT_OPS = {
    "autocontrast": lambda img, v: F.autocontrast(img),
    "brightness": lambda img, v: F.adjust_brightness(img, _factor(v)),
    "color": lambda img, v: F.adjust_saturation(img, _factor(v)),
    "contrast": lambda img, v: F.adjust_contrast(img, _factor(v)),
    "equalize": lambda img, v: F.equalize(img),
    "identity": lambda img, v: img,
    "posterize": lambda img, v: F.posterize(img, 4 + int(v * 4.999)),
    "rotate": lambda img, v: F.rotate(img, _signed(v, 30.0), interpolation=_NEAREST, fill=0.0),
    "sharpness": lambda img, v: F.adjust_sharpness(img, _factor(v)),
    "shear_x": lambda img, v: _affine(img, shear=(_shear(v), 0.0)),
    "shear_y": lambda img, v: _affine(img, shear=(0.0, _shear(v))),
    "solarize": lambda img, v: F.solarize(img, v),
    "translate_x": lambda img, v: _affine(img, translate=(_signed(v, 0.3) * img.shape[-1], 0.0)),
    "translate_y": lambda img, v: _affine(img, translate=(0.0, _signed(v, 0.3) * img.shape[-2])),
}


@dataclass(frozen=True)
class StrongAugment:
    """RandAugment + Cutout as in FixMatch/FlexMatch, followed by the weak crop and flip.

    ``num_ops`` ops are drawn with replacement from :data:`RAND_AUGMENT_OPS`, each with a
    magnitude drawn uniformly from its whole range (FlexMatch's ``RandAugment(3, 5)``). Cutout
    then paints a grey (0.5) square whose side is ``U(0, cutout)`` times the image's shorter
    side at a uniform position.

    Args:
        num_ops: Ops per image.
        cutout: Largest Cutout side, as a fraction of the image's shorter side.
        weak: The crop and flip applied last.
    """

    num_ops: int = 3
    cutout: float = 0.5
    weak: WeakAugment = field(default_factory=WeakAugment)

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable parameters."""
        return {"ops": sorted(RAND_AUGMENT_OPS), "num_ops": self.num_ops, "cutout": self.cutout,
                "weak": self.weak.spec()}  # fmt: skip

    def __call__(self, image: Tensor, g: torch.Generator) -> Tensor:
        """Augment a ``[C, H, W]`` image with randomness from ``g``."""
        names = sorted(RAND_AUGMENT_OPS)
        out = image
        for _ in range(self.num_ops):
            op = names[_randint(g, len(names))]
            out = RAND_AUGMENT_OPS[op](out, _uniform(g))
        out = self._cutout(out, g)
        return self.weak(out, g)

    def _cutout(self, image: Tensor, g: torch.Generator) -> Tensor:
        height, width = image.shape[-2:]
        side = int(_uniform(g, 0.0, self.cutout) * min(height, width))
        x, y = _uniform(g, 0.0, width), _uniform(g, 0.0, height)
        if side == 0:
            return image
        x0, y0 = int(max(0.0, x - side / 2)), int(max(0.0, y - side / 2))
        out = image.clone()
        out[..., y0 : min(height, y0 + side), x0 : min(width, x0 + side)] = 0.5
        return out


@dataclass(frozen=True)
class ViewTransform:
    """One view as a function of ``(image, index)``; ``augment`` None is the plain view."""

    name: str
    seed: int
    augment: WeakAugment | StrongAugment | None

    def __call__(self, image: Tensor, index: int) -> Tensor:
        """The view of item ``index`` (``image`` float ``[C, H, W]`` in ``[0, 1]``)."""
        if self.augment is None:
            return image
        return self.augment(image, item_generator(self.seed, self.name, index)).clamp_(0.0, 1.0)


@dataclass(frozen=True)
class ViewRecipe:
    """Which views the cache holds: plain (always, view 0), then weak, then strong.

    Args:
        weak_views: Number of weak views (views ``1 .. weak_views``).
        strong_views: Number of strong views (the views after the weak ones).
        seed: Seed of every augmented view.
        weak: The weak augmentation.
        strong: The strong augmentation.
    """

    weak_views: int = 0
    strong_views: int = 0
    seed: int = 0
    weak: WeakAugment = field(default_factory=WeakAugment)
    strong: StrongAugment = field(default_factory=StrongAugment)

    def __post_init__(self) -> None:
        from lbench.errors import ConfigError

        for what in ("weak_views", "strong_views"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{what} must be a non-negative integer, got {value!r}")

    @property
    def num_views(self) -> int:
        """Views in all, the plain one included."""
        return 1 + self.weak_views + self.strong_views

    def names(self) -> list[str]:
        """View names in view order: ``plain``, ``weak0`` ..., ``strong0`` ..."""
        weak = [f"weak{k}" for k in range(self.weak_views)]
        return ["plain", *weak, *(f"strong{k}" for k in range(self.strong_views))]

    def kind(self, name: str) -> str:
        """``plain``, ``weak`` or ``strong``."""
        return name.rstrip("0123456789")

    def transform(self, name: str) -> ViewTransform:
        """The transform of the view called ``name``."""
        kind = self.kind(name)
        augment = {"plain": None, "weak": self.weak, "strong": self.strong}[kind]
        return ViewTransform(name, self.seed, augment)

    def view_spec(self, name: str) -> dict[str, Any]:
        """Stable identity of one view (``{"view": "plain"}`` for the plain view)."""
        kind = self.kind(name)
        if kind == "plain":
            return {"view": "plain"}
        augment = self.weak if kind == "weak" else self.strong
        return {"view": name, "seed": self.seed, "transform": {"kind": kind, **augment.spec()},
                "version": VIEWS_VERSION}  # fmt: skip

    def spec(self) -> dict[str, Any]:
        """Stable identity of the whole recipe (counts, seed and both augmentations)."""
        return {**asdict(self), "weak": self.weak.spec(), "strong": self.strong.spec(), "version": VIEWS_VERSION}
