"""What makes a run directory one experiment: its settings and the config values that change results.

``run.json`` holds the run's ``settings`` (arms, seeds, rounds, budgets) and ``config``: the
resolved config, flattened to ``dotted.key: value``, without the keys that do not change
results (output paths, progress, loggers, cache location). Resuming checks both; a run may be
*extended* (more rounds, arms or seeds, everything else equal), since its finished rounds stay
valid. Any other difference is refused with a message that names the differing settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lbench.errors import ConfigError

__all__ = [
    "EXEMPT",
    "check_point_eval_resume",
    "check_resume",
    "config_identity",
    "point_eval_identity",
    "settings_changes",
]

#: Config keys (and key prefixes) that never change a run's results.
EXEMPT = (
    "config",
    "out_dir",
    "report",
    "arms",
    "seeds",
    "rounds",
    "budget",
    "initial_budget",
    "trainer.logger",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.enable_checkpointing",
    "trainer.default_root_dir",
    "trainer.profiler",
    "data.init_args.cache_dir",
    "data.init_args.embed_batch_size",
    "data.init_args.device",
    "point_eval",
)
"""``point_eval`` is checked on its own (:func:`check_point_eval_resume`): it runs after the rounds."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _exempt(key: str) -> bool:
    return any(key == e or key.startswith(e + ".") for e in EXEMPT)


def config_identity(config_text: str | None) -> dict[str, Any] | None:
    """The result-relevant part of a resolved config (YAML text), flattened; None without a config."""
    if config_text is None:
        return None
    flat = _flatten(yaml.safe_load(config_text) or {})
    return {k: v for k, v in sorted(flat.items()) if not _exempt(k)}


def settings_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Compare two ``ExperimentSpec.settings()``.

    Returns:
        ``(refused, extended)``: human-readable differences that make the new settings another
        experiment, and those that only extend the old run (more rounds, arms or seeds).
    """
    refused, extended = [], []
    for key in ("budget", "initial_budget"):
        if old[key] != new[key]:
            refused.append(f"{key} {old[key]} -> {new[key]}")
    if new["rounds"] < old["rounds"]:
        refused.append(f"rounds {old['rounds']} -> {new['rounds']} (a run can be extended, not shortened)")
    elif new["rounds"] > old["rounds"]:
        extended.append(f"rounds {old['rounds']} -> {new['rounds']}")
    for name, spec in old["arms"].items():
        if name not in new["arms"]:
            refused.append(f"arm {name} is missing (the run has {', '.join(old['arms'])})")
        elif new["arms"][name] != spec:
            refused.append(f"arm {name}: {spec} -> {new['arms'][name]}")
    added = [n for n in new["arms"] if n not in old["arms"]]
    if added:
        extended.append(f"arms + {', '.join(added)}")
    missing = [s for s in old["seeds"] if s not in new["seeds"]]
    if missing:
        refused.append(f"seeds {missing} are missing (the run has {old['seeds']})")
    more = [s for s in new["seeds"] if s not in old["seeds"]]
    if more:
        extended.append(f"seeds + {more}")
    return refused, extended


def _config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}" for k in keys if old.get(k) != new.get(k)]


def check_resume(
    out: Path, old_meta: dict[str, Any], settings: dict[str, Any], identity: dict[str, Any] | None
) -> list[str]:
    """Check that a run directory may be resumed (or extended) with new settings.

    Args:
        out: The run directory (for the message).
        old_meta: Its ``run.json``.
        settings: The new ``ExperimentSpec.settings()``.
        identity: The new :func:`config_identity` (None: not checked).

    Returns:
        The extensions (empty for a plain resume).

    Raises:
        ConfigError: The run directory holds another experiment; the message names each
            differing setting (the first five, and how many more).
    """
    try:
        old_settings = old_meta["settings"]
        refused, extended = settings_changes(old_settings, settings)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{out / 'run.json'} is not a run description ({e!r}); use another --out_dir") from e
    old_identity = old_meta.get("config")
    if identity is not None and old_identity is not None:
        refused += _config_changes(old_identity, identity)
    if refused:
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise ConfigError(
            f"{out} holds a run with other settings: {'; '.join(refused[:5])}{more}. Use another --out_dir, or "
            "the run's own settings (a run may only be extended with more rounds, arms or seeds)"
        )
    return extended


def point_eval_identity(config_text: str | None) -> dict[str, Any] | None:
    """The ``point_eval`` part of a resolved config (YAML text), flattened; None without a config."""
    if config_text is None:
        return None
    flat = _flatten(yaml.safe_load(config_text) or {})
    return {k: v for k, v in sorted(flat.items()) if k == "point_eval" or k.startswith("point_eval.")}


def check_point_eval_resume(
    out: Path,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    records: list[dict[str, Any]],
    total_labels: int,
) -> list[dict[str, Any]]:
    """Which point-evaluation records of a run directory stay valid on resume.

    Records made on another labeled set (the run was extended by rounds) are dropped, to be
    redone. Records made with other ``point_eval`` settings refuse the resume: they would be
    mixed with new ones in one table.

    Args:
        out: The run directory (for the message).
        old: The ``point_eval`` identity in its ``run.json`` (None: none recorded).
        new: The identity of this command's ``point_eval`` (None: not configured).
        records: The records of its ``point_eval.jsonl``.
        total_labels: Labels at the end of the run as now configured.

    Raises:
        ConfigError: The recorded point evaluation used other settings.
    """
    records = [r for r in records if r.get("num_labeled") == total_labels]
    if not records or new is None or old is None or old == new:
        return records
    changes = _config_changes(old, new)
    shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
    raise ConfigError(
        f"{out}/point_eval.jsonl holds point evaluations made with other point_eval settings ({shown}); "
        f"use another --out_dir, or delete {out}/point_eval.jsonl to evaluate again"
    )
