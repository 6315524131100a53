"""Query strategies. Reference them in configs by class name (``Margin``) or class path."""

from lbench.strategies.base import PoolView, QueryStrategy
from lbench.strategies.random import Random
from lbench.strategies.uncertainty import Confidence, Entropy, Margin

__all__ = ["Confidence", "Entropy", "Margin", "PoolView", "QueryStrategy", "Random"]
