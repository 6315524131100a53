"""EmbeddingCache: embeddings of a split under an encoder, fp16 on disk, keyed by a fingerprint.

Layout: ``<root>/<split name>-<key>/`` with ``embeddings.npy`` (an fp16 ``[S, N, D]`` array,
``S`` views; view 0 is the plain preprocess) and ``meta.json`` (the fingerprint, the shape and
how many items are done). ``key`` is a hash of the fingerprint (split content, encoder,
weights, transform, views), so a changed fingerprint means a new folder and a rebuild, never
silent reuse. An interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lbench._io import atomic_write_json, read_json
from lbench.console import progress
from lbench.data.base import ImageSplit
from lbench.encoders.base import Encoder
from lbench.errors import CacheError

__all__ = ["EmbeddingCache", "cache_fingerprint"]

_FORMAT = "lbench.EmbeddingCache/1"


def cache_fingerprint(split: ImageSplit, encoder: Encoder, num_views: int = 1) -> dict[str, Any]:
    """Everything that determines the cached embeddings."""
    return {
        "format": _FORMAT,
        "split": {**split.fingerprint, "name": split.name, "n": len(split), "content": split.content_hash},
        "encoder": encoder.fingerprint(),
        "views": num_views,
    }


class EmbeddingCache:
    """Builds, completes and loads cached embeddings.

    Args:
        root: Folder holding the caches (shared by runs, so a second run reuses them).
        batch_size: Images per encoder forward.
        device: Device for the encoder (``auto`` = CUDA when available).
        checkpoint_every: Persist progress every this many batches (resumable builds).
        progress: Show a progress bar while building.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "checkpoints/cache",
        batch_size: int = 64,
        device: str = "auto",
        checkpoint_every: int = 20,
        progress: bool = True,
    ) -> None:
        self.root = Path(root)
        self.batch_size = batch_size
        self.device = device
        self.checkpoint_every = checkpoint_every
        self.progress = progress

    def folder(self, split: ImageSplit, encoder: Encoder) -> Path:
        """Folder of the cache for this split and encoder."""
        return self._folder(split, cache_fingerprint(split, encoder))

    def _folder(self, split: ImageSplit, fp: dict[str, Any]) -> Path:
        key = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
        return self.root / f"{split.name}-{key}"

    def is_complete(self, split: ImageSplit, encoder: Encoder) -> bool:
        """Whether a finished cache exists (raises :class:`CacheError` if it is unreadable)."""
        meta = self._read_meta(self.folder(split, encoder))
        return meta is not None and meta["done"] == meta["shape"][1]

    def load_or_build(self, split: ImageSplit, encoder: Encoder) -> Tensor:
        """Return the ``[N, D]`` fp16 embeddings of view 0, building or completing the cache first.

        Raises:
            CacheError: A cache file exists but is unreadable or inconsistent.
        """
        fp = cache_fingerprint(split, encoder)
        folder = self._folder(split, fp)
        meta = self._read_meta(folder)
        shape = [1, len(split), encoder.embed_dim]
        if meta is not None and (meta["fingerprint"] != fp or meta["shape"] != shape):
            raise CacheError(f"cache {folder} does not match its fingerprint; delete the folder to rebuild it")
        array = self._open(folder, shape, create=meta is None)
        done = 0 if meta is None else int(meta["done"])
        if done < shape[1]:
            self._build(split, encoder, array, folder, fp, shape, done)
        return torch.from_numpy(np.ascontiguousarray(array[0]))

    # -- internals -------------------------------------------------------------------------
    def _read_meta(self, folder: Path) -> dict[str, Any] | None:
        path = folder / "meta.json"
        if not path.exists():
            return None
        try:
            meta = read_json(path)
            _ = meta["fingerprint"], meta["shape"], int(meta["done"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CacheError(f"cache file {path} is unreadable ({e}); delete {folder} to rebuild it") from e
        return meta

    def _open(self, folder: Path, shape: list[int], create: bool) -> np.memmap:
        path = folder / "embeddings.npy"
        try:
            if create:
                folder.mkdir(parents=True, exist_ok=True)
                return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=tuple(shape))
            array = np.load(path, mmap_mode="r+")
        except (OSError, ValueError) as e:
            raise CacheError(f"cache file {path} is unreadable ({e}); delete {folder} to rebuild it") from e
        if list(array.shape) != shape or array.dtype != np.float16:
            raise CacheError(f"cache file {path} has shape {array.shape}, expected {shape}; delete {folder} to rebuild")
        return array

    def _build(
        self,
        split: ImageSplit,
        encoder: Encoder,
        array: np.memmap,
        folder: Path,
        fp: dict[str, Any],
        shape: list[int],
        done: int,
    ) -> None:
        device = torch.device("cuda" if self.device == "auto" and torch.cuda.is_available() else
                              ("cpu" if self.device == "auto" else self.device))  # fmt: skip
        encoder = encoder.to(device).eval()
        subset = torch.utils.data.Subset(split, range(done, len(split)))
        loader = DataLoader(subset, batch_size=self.batch_size, shuffle=False)
        bar = progress(len(split), f"embedding {split.name}", unit="img", initial=done, disable=not self.progress)
        for b, (images, _, index) in enumerate(loader):
            z = encoder.encode(images.to(device)).float().cpu().numpy()
            array[0, int(index[0]) : int(index[-1]) + 1] = z.astype(np.float16)
            done = int(index[-1]) + 1
            bar.update(len(index))
            if (b + 1) % self.checkpoint_every == 0 or done == len(split):
                array.flush()
                atomic_write_json(folder / "meta.json", {"fingerprint": fp, "shape": shape, "done": done})
        bar.close()
        if not np.isfinite(array[0]).all():
            raise CacheError(f"encoder produced non-finite embeddings for {split.name}; check the encoder weights")
