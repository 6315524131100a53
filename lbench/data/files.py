"""A split whose items are image files, opened with PIL on access.

The manifest lists each file's id (its path relative to ``root``), size and modification time
(or, with ``hash_files=True``, its SHA-256) and label, so opening a split costs one ``stat`` per
file, not one decode.

Bad input: a file that is missing when the split is built, or that PIL cannot decode when an
item is read, raises :class:`~lbench.errors.DataError` naming the file (``on_bad_image="error"``,
the default). With ``on_bad_image="skip"`` every file is decoded once when the split is built
(memoised per ``(path, size, mtime)`` in the process: one decode pass per process, slow for a
large folder), files that are missing or fail to decode are left out of the split with a warning
naming them, and the global indices are those of the remaining files; the manifest, and so the
content hash, reflects what was kept.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from lbench.data.base import ImageSplit
from lbench.data.manifest import digest_strings, file_sha256
from lbench.errors import ConfigError, DataError

__all__ = ["FileSplit", "OnBadImage", "load_image_file"]

#: What to do with an image file that cannot be decoded.
OnBadImage = Literal["error", "skip"]
_MODES = {"RGB": 3, "L": 1}


class FileSplit(ImageSplit):
    """Image files (any format PIL reads) with one label each.

    Args:
        name: Short name, e.g. ``photos-train``.
        files: Image paths (absolute, or relative to ``root``).
        targets: One label per file.
        root: Folder the ids are relative to (default: ids are the paths as given).
        fingerprint: How the split was chosen.
        mode: ``RGB`` (3 channels) or ``L`` (grey, 1 channel).
        image_size: Resize the shorter side to this and crop the centre square (PIL bicubic), so
            images of mixed sizes batch together; None keeps each file's size.
        on_bad_image: ``error`` (a file that cannot be decoded raises DataError naming it when
            read) or ``skip`` (decode every file once now and leave out the ones that fail).
        hash_files: Put each file's SHA-256 in the manifest instead of its modification time
            (reads every file once per process; survives copying the folder).

    Raises:
        ConfigError: A bad ``mode``, ``image_size`` or ``on_bad_image``.
        DataError: A file is missing (``error``), or no file is left (``skip``).
    """

    def __init__(
        self,
        name: str,
        files: Sequence[str | os.PathLike[str]],
        targets: Sequence[int] | Tensor,
        root: str | os.PathLike[str] | None = None,
        fingerprint: dict[str, Any] | None = None,
        mode: Literal["RGB", "L"] = "RGB",
        image_size: int | None = None,
        on_bad_image: OnBadImage = "error",
        hash_files: bool = False,
    ) -> None:
        if mode not in _MODES:
            raise ConfigError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
        if on_bad_image not in ("error", "skip"):
            raise ConfigError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        if image_size is not None and image_size <= 0:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        labels = torch.as_tensor(targets, dtype=torch.int64)
        if labels.shape != (len(files),):
            raise ValueError(f"targets must have one label per file, got {tuple(labels.shape)} for {len(files)}")
        self.name = name
        self.root = Path(root) if root is not None else None
        self.fingerprint = dict(fingerprint or {})
        self.mode = mode
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.hash_files = hash_files
        names = [os.fspath(f) for f in files]
        keep, sizes, mtimes, bad = [], [], [], []
        for k, f in enumerate(names):
            path = f if self.root is None else os.path.join(self.root, f)
            try:
                st = os.stat(path)
            except OSError as e:
                if on_bad_image == "error":
                    raise DataError(f"image file {path} of {name} cannot be read: {e.strerror or e}") from e
                bad.append(path)
                continue
            if on_bad_image == "skip" and not _decodes(path, st.st_size, st.st_mtime_ns, mode):
                bad.append(path)
                continue
            keep.append(k)
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            warnings.warn(f"{name}: skipped {len(bad)} image file(s) that cannot be decoded: {shown}", stacklevel=2)
        if not keep:
            raise DataError(f"{name} has no readable image files")
        self.files = [names[k] for k in keep]  # as given (relative to root); strings scale to large folders
        self.targets = labels[keep]
        self.skipped = bad
        self._sizes = np.asarray(sizes, dtype=np.int64)
        self._mtimes = np.asarray(mtimes, dtype=np.int64)

    def path(self, i: int) -> Path:
        """Path of file ``i``."""
        return Path(self.files[i]) if self.root is None else self.root / self.files[i]

    def load_image(self, i: int) -> Tensor:
        """Decode file ``i`` with PIL: float ``[C, H, W]`` in ``[0, 1]``.

        Raises:
            DataError: The file cannot be decoded (the message names it).
        """
        try:
            return load_image_file(self.path(i), self.mode, self.image_size)
        except DataError as e:
            raise DataError(f"{e} (item {i} of {self.name}); fix or remove the file, or set on_bad_image: skip") from e

    def item_id(self, i: int) -> str:
        """The file's path as given (relative to ``root`` when there is one)."""
        return self.files[i]

    def manifest(self) -> dict[str, Any]:
        """Ids, sizes, modification times (or SHA-256) and labels of the files; mode and size."""
        labels, sizes, mtimes = self.targets.tolist(), self._sizes.tolist(), self._mtimes.tolist()

        def line(i: int) -> str:
            stamp = file_sha256(self.path(i)) if self.hash_files else mtimes[i]
            return f"{self.files[i]}\t{sizes[i]}\t{stamp}\t{labels[i]}"

        try:
            items = digest_strings(line(i) for i in range(len(self)))
        except OSError as e:
            raise DataError(f"cannot hash an image file of {self.name}: {e}") from e
        return {
            "kind": "files",
            "n": len(self),
            "mode": self.mode,
            "image_size": self.image_size,
            "stamp": "sha256" if self.hash_files else "mtime",
            "items": items,
        }


def load_image_file(path: str | os.PathLike[str], mode: str = "RGB", image_size: int | None = None) -> Tensor:
    """Decode an image file: float ``[C, H, W]`` in ``[0, 1]``.

    Args:
        path: The image file.
        mode: PIL mode to convert to (``RGB`` or ``L``).
        image_size: Shorter side resized to this and the centre square cropped (bicubic).

    Raises:
        DataError: PIL cannot open or decode the file.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if image_size is not None:
                im = ImageOps.fit(im, (image_size, image_size), method=Image.Resampling.BICUBIC)
            array = np.array(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image file {path}: {e}") from e
    x = torch.from_numpy(array)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    return x.float().div_(255.0)


@cache
def _decodes(path: str, size: int, mtime_ns: int, mode: str) -> bool:
    """Whether PIL decodes the file (memoised per path, size and modification time)."""
    try:
        load_image_file(path, mode)
    except DataError:
        return False
    return True
