"""Data sets (pool + test splits on a lazy item protocol) and the LightningDataModule serving cached embeddings."""

from lbench.data.base import ArraySplit, ImageSplit, PoolDataset
from lbench.data.digits import Digits
from lbench.data.fashion_mnist import FashionMNIST
from lbench.data.files import FileSplit
from lbench.data.folder import ImageFolder
from lbench.data.project import ImageProject

__all__ = [
    "ArraySplit",
    "Digits",
    "FashionMNIST",
    "FileSplit",
    "ImageFolder",
    "ImageProject",
    "ImageSplit",
    "PoolDataset",
]
