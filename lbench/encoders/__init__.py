"""Image encoders behind one interface. Configs reference them by class name."""

from lbench.encoders.base import Encoder
from lbench.encoders.efficientnet import EfficientNetLite0Encoder
from lbench.encoders.open_clip import OpenCLIPEncoder
from lbench.encoders.pixels import PixelEncoder

__all__ = ["EfficientNetLite0Encoder", "Encoder", "OpenCLIPEncoder", "PixelEncoder"]
