"""Fixed-point formats, the quantized artifact and the quantizer."""

from .artifact import QLayer, QuantizedModel, load_artifact, save_artifact
from .fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat, requantize_int

__all__ = [
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "FixedFormat",
    "QLayer",
    "QuantizedModel",
    "load_artifact",
    "requantize_int",
    "save_artifact",
]
