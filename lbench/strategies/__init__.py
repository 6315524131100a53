"""Query strategies. Reference them in configs by class name (``Margin``) or class path."""

from lbench.strategies.badge import Badge
from lbench.strategies.bait import Bait
from lbench.strategies.base import PoolView, QueryStrategy
from lbench.strategies.cluster_margin import ClusterMargin
from lbench.strategies.coreset import Coreset
from lbench.strategies.galaxy import Galaxy, GalaxyBatch
from lbench.strategies.random import Random
from lbench.strategies.seals import Seals
from lbench.strategies.stochastic import StochasticBatch
from lbench.strategies.typiclust import TypiClust
from lbench.strategies.uncertainty import Confidence, Entropy, Margin

__all__ = [
    "Badge",
    "Bait",
    "ClusterMargin",
    "Confidence",
    "Coreset",
    "Entropy",
    "Galaxy",
    "GalaxyBatch",
    "Margin",
    "PoolView",
    "QueryStrategy",
    "Random",
    "Seals",
    "StochasticBatch",
    "TypiClust",
]
