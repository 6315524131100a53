"""LightningModules: proxy heads on cached embeddings (and, later, end-to-end fine-tuning)."""

from lbench.modules.proxy import ProxyClassifier

__all__ = ["ProxyClassifier"]
