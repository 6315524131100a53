"""The pool's scores on disk: one shard per rank, written by ``trainer.predict``, read memory-mapped.

The score phase of a round (``trainer.predict`` over the pool) hands every batch's ``index``
(global pool indices), ``probs`` and, for diversity strategies, ``embeddings`` to
:class:`ScoreShardWriter`. Each rank keeps only its own rows (``N / world`` of them) and, at
the end of the epoch, writes them into its shard folder ``rank_<r>_of_<w>/`` (``index.npy``,
``probs.npy``, ``embeddings.npy`` and ``done.json``, made in a temporary folder and renamed into
place, so a shard is whole or absent). No rank ever holds another rank's rows.

Selection then runs on rank 0 alone, outside any collective, from :func:`read_score_shards`
(memory-mapped ``.npy`` files: the rows are read once, into what the strategy needs). Shards are
keyed by global index, so those of a run on another number of ranks read back the same.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from typing_extensions import override

from lbench._io import fsync_dir
from lbench.errors import ConfigError, DataError

__all__ = ["SCORE_DTYPES", "ScoreShardWriter", "read_score_shards", "shards_complete", "sort_unique_rows"]

SCORE_DTYPES = {"float32": np.float32, "float16": np.float16}
"""Storage types of probabilities and embeddings: float32 keeps selections exactly those of the
in-memory path; float16 halves disk and rank 0's memory for large pools (ties may then break
differently)."""

KEYS = ("index", "probs", "embeddings")


def _shard_name(rank: int, world: int) -> str:
    return f"rank_{rank}_of_{world}"


def sort_unique_rows(rows: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rows sorted by ``index``, each index once (padding samplers may repeat items)."""
    order = torch.argsort(rows["index"])
    index = rows["index"][order]
    dup = torch.zeros_like(index, dtype=torch.bool)
    dup[1:] = index[1:] == index[:-1]
    return {k: v[order][~dup] for k, v in rows.items()}


class ScoreShardWriter(BasePredictionWriter):
    """Write each rank's predictions over the pool into its shard of ``folder``.

    The predict step must return a dict with ``index`` and ``probs`` (and ``embeddings`` when the
    strategy needs them), as for :class:`~lbench.loop.ActiveLoop`.

    At the start of predict, rank 0 clears ``folder`` (an unfinished attempt's shards) and every
    rank waits for it; at the end every rank writes its shard and waits until all are written, so
    after ``trainer.predict`` returns the folder holds exactly this attempt's shards.

    Args:
        folder: Where the shards go (created).
        dtype: Storage type of ``probs`` and ``embeddings``: ``"float32"`` or ``"float16"``.
        embeddings: Keep the ``embeddings`` (False for a strategy that reads probabilities only: a
            pool's embeddings are usually most of its scores' bytes).
    """

    def __init__(self, folder: str | os.PathLike[str], dtype: str = "float32", embeddings: bool = True) -> None:
        super().__init__(write_interval="batch")
        if dtype not in SCORE_DTYPES:
            raise ConfigError(f"score dtype must be one of {', '.join(SCORE_DTYPES)}, got {dtype!r}")
        self.folder = Path(folder)
        self.dtype = dtype
        self.keys = KEYS if embeddings else KEYS[:2]
        self.seconds = 0.0
        self._rows: list[dict[str, Tensor]] = []

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []
        if trainer.is_global_zero and self.folder.exists():
            shutil.rmtree(self.folder)
        trainer.strategy.barrier("lbench.scores.clear")

    @override
    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if not isinstance(prediction, dict) or "index" not in prediction or "probs" not in prediction:
            raise ConfigError("scoring the pool needs predict_step to return a dict with 'index' and 'probs'")
        self._rows.append({k: prediction[k].detach().cpu() for k in self.keys if k in prediction})

    @override
    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rows:
            rows = {k: torch.cat([r[k] for r in self._rows]) for k in self._rows[0]}
        else:  # a rank without items writes an empty shard
            rows = {"index": torch.empty(0, dtype=torch.long)}
        self._rows = []
        self._write(trainer.global_rank, trainer.world_size, rows)
        trainer.strategy.barrier("lbench.scores.written")

    def _write(self, rank: int, world: int, rows: dict[str, Tensor]) -> None:
        dtype = SCORE_DTYPES[self.dtype]
        final = self.folder / _shard_name(rank, world)
        tmp = self.folder / f".{final.name}.{os.getpid()}.tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=False)
            shapes = {}
            for k, v in rows.items():
                arr = v.numpy().astype(np.int64 if k == "index" else dtype, copy=False)
                np.save(tmp / f"{k}.npy", arr)
                shapes[k] = list(arr.shape)
            with open(tmp / "done.json", "w", encoding="utf-8") as f:
                json.dump({"rank": rank, "world": world, "dtype": self.dtype, "shapes": shapes}, f)
                f.flush()
                os.fsync(f.fileno())
            if final.exists():  # an earlier attempt's (only when a shard survived the clearing)
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(self.folder)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"cannot write the pool's scores into {self.folder} ({e})") from e


def _complete_world(folder: Path) -> int | None:
    """A world size ``w`` for which all ``w`` shards are in ``folder``, or None."""
    if not folder.is_dir():
        return None
    worlds: dict[int, set[int]] = {}
    for p in folder.iterdir():
        parts = p.name.split("_")  # rank_<r>_of_<w>
        if len(parts) == 4 and parts[0] == "rank" and parts[2] == "of" and (p / "done.json").is_file():
            try:
                worlds.setdefault(int(parts[3]), set()).add(int(parts[1]))
            except ValueError:
                continue
    full = [w for w, ranks in worlds.items() if ranks == set(range(w))]
    return min(full) if full else None


def shards_complete(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a whole set of score shards (of any number of ranks)."""
    return _complete_world(Path(folder)) is not None


def _open_shards(folder: Path) -> list[dict[str, np.ndarray]]:
    """The memory-mapped arrays of a whole set of shards, checked against their ``done.json``."""
    world = _complete_world(folder)
    if world is None:
        raise DataError(f"no complete set of score shards in {folder}")
    shards = []
    for r in range(world):
        shard = folder / _shard_name(r, world)
        done = json.loads((shard / "done.json").read_text(encoding="utf-8"))
        arrays = {}
        for k, shape in done["shapes"].items():
            arr = np.load(shard / f"{k}.npy", mmap_mode="r")
            if list(arr.shape) != shape:
                raise DataError(f"score shard {shard / (k + '.npy')} has shape {list(arr.shape)}, expected {shape}")
            arrays[k] = arr
        shards.append(arrays)
    return shards


def read_score_shards(
    folder: str | os.PathLike[str], part: int = 0, parts: int = 1, keys: tuple[str, ...] = KEYS[1:]
) -> dict[str, Tensor]:
    """The shards' rows, sorted by pool index, each index once; ``probs``/``embeddings`` as float32.

    Args:
        folder: The shards' folder.
        part: Which contiguous part of the sorted pool to read (a rank of a sharded selection).
        parts: Into how many parts the sorted pool is cut (the whole pool with the default 1): part
            ``r`` holds the sorted rows ``[r * n // parts, (r + 1) * n // parts)``. Only those rows'
            scores are read (memory ``O(n)`` for the indices plus the part's rows).
        keys: Which of ``probs`` and ``embeddings`` to read (``index`` always).

    Raises:
        DataError: No whole set of shards, or a shard whose files do not match its ``done.json``.
    """
    shards = _open_shards(Path(folder))
    index = np.concatenate([np.asarray(s["index"], dtype=np.int64) for s in shards])
    which = np.concatenate([np.full(len(s["index"]), k, dtype=np.int64) for k, s in enumerate(shards)])
    row = np.concatenate([np.arange(len(s["index"]), dtype=np.int64) for s in shards])
    order = np.argsort(index, kind="stable")
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = index[order][1:] != index[order][:-1]  # padding samplers may repeat items
    order = order[keep]
    n = len(order)
    order = order[part * n // parts : (part + 1) * n // parts]
    out: dict[str, Tensor] = {"index": torch.from_numpy(index[order])}
    for key in keys:
        if not any(key in s for s in shards if len(s["index"])):
            continue
        width = next(s[key].shape[1] for s in shards if key in s)
        values = np.empty((len(order), width), dtype=np.float32)
        for k, s in enumerate(shards):
            mine = which[order] == k
            if mine.any():
                values[mine] = s[key][row[order][mine]]
        out[key] = torch.from_numpy(values)
    return out
