"""lbench: label-efficient learning with large pretrained vision models."""

__version__ = "0.1.0"
