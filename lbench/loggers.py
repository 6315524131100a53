"""Per-round loggers for ``lbench run`` from the user's ``trainer.logger`` config.

A run trains one model per round, and a Lightning logger belongs to one training, so ``run``
builds a fresh logger per round from the configured class and arguments, with ``version``
(TensorBoard, CSV, W&B, MLflow-style loggers) set to ``<arm>-seed_<s>-round_XX`` unless the
config sets it. Without a configured logger, ``run`` keeps a CSV logger per round in the run
directory.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from lightning.pytorch.loggers import Logger

from lbench.errors import ConfigError

__all__ = ["ConfiguredLoggers", "round_version"]


def round_version(arm: str, seed: int, rnd: int | str) -> str:
    """The version name of one round's logger (``rnd`` a round number, or a phase name such as ``point_eval``)."""
    return f"{arm}-seed_{seed}-" + (rnd if isinstance(rnd, str) else f"round_{rnd:02d}")


class ConfiguredLoggers:
    """Build the configured logger(s) anew for every round.

    Args:
        specs: ``{"class_path": ..., "init_args": {...}}`` dicts, as in ``trainer.logger``.
    """

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.specs = []
        for spec in specs:
            if not isinstance(spec, dict) or "class_path" not in spec:
                raise ConfigError(f"trainer.logger: expected class_path/init_args, got {spec!r}")
            module, _, name = str(spec["class_path"]).rpartition(".")
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as e:
                raise ConfigError(f"trainer.logger: cannot import {spec['class_path']} ({e})") from e
            if not (isinstance(cls, type) and issubclass(cls, Logger)):
                raise ConfigError(f"trainer.logger: {spec['class_path']} is not a Lightning Logger")
            self.specs.append((cls, dict(spec.get("init_args") or {})))

    def __call__(self, arm: str, seed: int, rnd: int | str) -> list[Logger]:
        """The loggers of round ``rnd`` (or the phase called ``rnd``) of ``arm`` and ``seed``."""
        loggers = []
        for cls, init_args in self.specs:
            kwargs = dict(init_args)
            if "version" in inspect.signature(cls).parameters and kwargs.get("version") is None:
                kwargs["version"] = round_version(arm, seed, rnd)
            loggers.append(cls(**kwargs))
        return loggers
