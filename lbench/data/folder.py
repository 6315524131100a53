"""A folder of images, one sub-folder per class: ``<root>/<pool_dir>/<class>/*.jpg`` and a test folder.

The class names are the sub-folder names of the pool folder, sorted; a test class that the pool
lacks is an error. Files are listed in sorted order, so the global indices are stable while the
folder is unchanged. Items load lazily through :class:`~lbench.data.files.FileSplit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lbench.data.base import PoolDataset
from lbench.data.files import FileSplit, OnBadImage
from lbench.errors import DataError

__all__ = ["ImageFolder"]

#: File name suffixes taken as images (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageFolder(PoolDataset):
    """Labeled images in class sub-folders, as a pool and a test split.

    Args:
        root: The data set folder.
        pool_dir: Sub-folder of ``root`` holding the pool's class folders.
        test_dir: Sub-folder of ``root`` holding the test split's class folders.
        image_size: Shorter side resized to this and the centre square cropped when an image is
            read (None keeps each file's size; images then must share one size to batch).
        mode: ``RGB`` or ``L`` (grey).
        on_bad_image: ``error`` (a file that cannot be decoded is an error naming it) or
            ``skip`` (decode every file once when the split opens; leave out the bad ones).
        hash_files: Identify files by SHA-256 rather than size and modification time.

    Raises:
        DataError: The pool folder is missing or has no class folders.
    """

    def __init__(
        self,
        root: str,
        pool_dir: str = "train",
        test_dir: str = "test",
        image_size: int | None = 224,
        mode: Literal["RGB", "L"] = "RGB",
        on_bad_image: OnBadImage = "error",
        hash_files: bool = False,
    ) -> None:
        self.root = Path(root)
        self.pool_dir = pool_dir
        self.test_dir = test_dir
        self.image_size = image_size
        self.mode = mode
        self.on_bad_image = on_bad_image
        self.hash_files = hash_files
        folder = self.root / pool_dir
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist (expected {folder}/<class>/<image files>)")
        self.class_names = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
        if not self.class_names:
            raise DataError(f"image folder {folder} has no class sub-folders (expected {folder}/<class>/<files>)")

    def _split(self, which: str, sub: str) -> FileSplit:
        folder = self.root / sub
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist")
        index = {c: k for k, c in enumerate(self.class_names)}
        files, labels = [], []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if class_dir.name not in index:
                raise DataError(f"class folder {class_dir} is not a class of {self.root / self.pool_dir}")
            for f in sorted(class_dir.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    files.append(f.relative_to(self.root).as_posix())
                    labels.append(index[class_dir.name])
        if not files:
            raise DataError(f"image folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return FileSplit(
            name=f"{self.root.name}-{which}",
            files=files,
            targets=labels,
            root=self.root,
            fingerprint={"dataset": "image_folder", "split": sub},
            mode=self.mode,
            image_size=self.image_size,
            on_bad_image=self.on_bad_image,
            hash_files=self.hash_files,
        )

    def pool_split(self) -> FileSplit:
        """The pool: every image under ``<root>/<pool_dir>``."""
        return self._split("train", self.pool_dir)

    def test_split(self) -> FileSplit:
        """The test split: every image under ``<root>/<test_dir>``."""
        return self._split("test", self.test_dir)
