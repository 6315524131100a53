"""What makes a run directory one experiment: its settings and the config values that change results.

``run.json`` holds the run's ``settings`` (arms, seeds, rounds, budgets) and ``config``: the
resolved config, flattened to ``dotted.key: value``, without the keys that do not change
results (output paths, progress, loggers, cache location). Resuming checks both; a run may be
*extended* (more rounds, arms or seeds, everything else equal), since its finished rounds stay
valid. Any other difference is refused with a message that names the differing settings.

``run.json`` also holds the run's ``identity``: a short hash (:func:`run_identity`) of the config
identity, the budgets, the content hashes of the data set's pool and test manifests and the
encoder's fingerprint (:func:`data_identity`). It does not depend on arms, seeds or rounds, so a
run extended by them keeps it; every ledger line (``run_id``) carries it, and ``report`` refuses to
merge rows of one arm name from runs of different identities. Resuming a run whose identity differs
while its config is equal (the data files or the encoder changed under the same config) is refused
(:func:`check_run_identity`); a ``run.json`` without one (older runs) gets it on resume.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from lbench.errors import ConfigError

__all__ = [
    "EXEMPT",
    "check_point_eval_resume",
    "check_resume",
    "check_run_identity",
    "config_identity",
    "data_identity",
    "point_eval_identity",
    "run_identity",
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
    "trainer.devices",  # a run on N ranks is the 1-process run (tests/test_ddp_reproduces.py): a run killed on
    "trainer.num_nodes",  # 8 GPUs may resume on 4 (the pool's score shards are keyed by global index)
    "trainer.strategy",
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


def data_identity(datamodule: Any) -> dict[str, Any]:
    """What a DataModule serves, beyond its config: its splits' manifest content hashes and its encoder.

    ``{"data": {"pool": hash, "test": hash}, "encoder": fingerprint or None}``. The content hashes
    are the splits' (cached) ``content_hash`` and the fingerprint the encoder's ``fingerprint()``:
    what the embedding cache keys on, computed once per process (an ImageDataModule has no encoder).
    """
    data = {}
    for name in ("pool", "test"):
        if name == "test" and not getattr(datamodule, "has_test_split", True):
            data[name] = None  # a person's own folder may have no test split
            continue
        split = getattr(datamodule, f"{name}_split", None)
        data[name] = getattr(split, "content_hash", None)
    encoder = getattr(datamodule, "encoder", None)
    return {"data": data, "encoder": encoder.fingerprint() if encoder is not None else None}


def run_identity(config: dict[str, Any] | None, settings: dict[str, Any], data: dict[str, Any]) -> str:
    """SHA-256 (16 hex) of a run's result-relevant identity, independent of its arms, seeds and rounds.

    Args:
        config: The :func:`config_identity` (None without a config).
        settings: ``ExperimentSpec.settings()`` (only ``budget`` and ``initial_budget`` count).
        data: The :func:`data_identity`.
    """
    ident = {
        "config": config,
        "budget": settings["budget"],
        "initial_budget": settings["initial_budget"],
        "data": data.get("data"),
        "encoder": data.get("encoder"),
    }
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _data_changes(old: Any, new: dict[str, Any]) -> list[str]:
    """What differs between a recorded and a new :func:`data_identity` (by name)."""
    if not isinstance(old, dict):
        return ["the data manifest or the encoder (this run.json does not record which)"]
    out = []
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for name in ("pool", "test"):
        if old_data.get(name) != new_data.get(name):
            out.append(f"data manifest of the {name} split {old_data.get(name)} -> {new_data.get(name)}")
    old_enc, new_enc = old.get("encoder"), new.get("encoder")
    if old_enc != new_enc:
        if isinstance(old_enc, dict) and isinstance(new_enc, dict):
            out += [f"encoder {c}" for c in _config_changes(old_enc, new_enc)]
        else:
            out.append(f"encoder fingerprint {json.dumps(old_enc)} -> {json.dumps(new_enc)}")
    return out


def check_run_identity(
    out: Path, old_meta: Any, settings: dict[str, Any], config: dict[str, Any] | None, datamodule: Any
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The run's identity, checked against its ``run.json`` on resume.

    A ``run.json`` without an identity (older runs) is accepted (its identity is computed now).
    One whose identity differs while the config identity and budgets are equal (what
    :func:`check_resume` compares) is refused, naming the split whose manifest or the encoder
    setting that changed. A run given no config (None) keeps the recorded one; a recorded run
    without a config is not checked (as in :func:`check_resume`).

    Args:
        out: The run directory (for the message).
        old_meta: Its ``run.json`` (empty for a new run).
        settings: The new ``ExperimentSpec.settings()``.
        config: The new :func:`config_identity` (None: the recorded one is kept).
        datamodule: The run's DataModule (:func:`data_identity`).

    Returns:
        ``(identity, data identity, config identity)`` to record in ``run.json``.

    Raises:
        ConfigError: The run directory holds a run of the same config on other data or another encoder.
    """
    old = old_meta if isinstance(old_meta, dict) else {}
    if config is None:
        config = old.get("config")
    data = data_identity(datamodule)
    ident = run_identity(config, settings, data)
    recorded = old.get("identity")
    old_settings = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    same_config = old.get("config") == config and all(
        old_settings.get(k, settings[k]) == settings[k] for k in ("budget", "initial_budget")
    )
    if recorded is not None and recorded != ident and same_config:
        changes = _data_changes(old.get("identity_of"), data)
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise ConfigError(
            f"{out} holds a run of the same config on other data or another encoder (identity {recorded} -> "
            f"{ident}): {shown or 'the data manifest or the encoder'}. Use another --out_dir, or restore the "
            "run's data and encoder"
        )
    return ident, data, config
