"""LightningModules: a shared task base, proxy heads on cached embeddings, and end-to-end fine-tuning."""

from lbench.modules.base import BaseTask
from lbench.modules.finetune import FineTuneClassifier
from lbench.modules.proxy import ProxyClassifier

__all__ = ["BaseTask", "FineTuneClassifier", "ProxyClassifier"]
