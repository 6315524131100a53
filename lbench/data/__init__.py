"""Data sets (pool + test splits on a lazy item protocol) and the LightningDataModule serving cached embeddings."""

from lbench.data.base import ArraySplit, ImageSplit, PoolDataset
from lbench.data.cifar import CIFAR10, CIFAR100
from lbench.data.digits import Digits
from lbench.data.fashion_mnist import FashionMNIST
from lbench.data.files import FileSplit
from lbench.data.folder import ImageFolder
from lbench.data.imagenet import ImageNet
from lbench.data.imbalance import Imbalanced, SubsetSplit
from lbench.data.project import ImageProject
from lbench.data.wilds import FMoW, IWildCam, WildsDataset

__all__ = [
    "ArraySplit",
    "CIFAR10",
    "CIFAR100",
    "Digits",
    "FMoW",
    "FashionMNIST",
    "FileSplit",
    "IWildCam",
    "ImageFolder",
    "ImageNet",
    "ImageProject",
    "ImageSplit",
    "Imbalanced",
    "PoolDataset",
    "SubsetSplit",
    "WildsDataset",
]
