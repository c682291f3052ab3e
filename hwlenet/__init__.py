"""hwlenet: a float LeNet-5, quantized to fixed point, simulated bit-accurately, lowered to RTL."""

from .errors import HwlenetError

__all__ = ["HwlenetError", "__version__"]

__version__ = "0.1.0"
