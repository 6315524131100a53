"""LightningModules: a shared task base and proxy heads on cached embeddings (later, end-to-end fine-tuning)."""

from lbench.modules.base import BaseTask
from lbench.modules.proxy import ProxyClassifier

__all__ = ["BaseTask", "ProxyClassifier"]
