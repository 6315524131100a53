"""Data sets (pool + test splits) and the LightningDataModule serving cached embeddings."""

from lbench.data.base import ImageSplit, PoolDataset
from lbench.data.digits import Digits
from lbench.data.fashion_mnist import FashionMNIST

__all__ = ["Digits", "FashionMNIST", "ImageSplit", "PoolDataset"]
