"""Semi-supervised training components: FlexMatch (FixMatch as ``flexible=False``).

A task module takes one as ``ssl=FlexMatch(...)`` (in configs: ``ssl: {class_path: FlexMatch}``).
"""

from lbench.ssl.flexmatch import AllGather, FlexMatch, FlexMatchOutput

__all__ = ["AllGather", "FlexMatch", "FlexMatchOutput"]
