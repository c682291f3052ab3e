"""The bit-accurate simulator (numba kernels) and its slow numpy reference."""

from .reference import reference_forward, reference_layer
from .simulator import SimulationResult, compare_with_float, simulate

__all__ = ["SimulationResult", "compare_with_float", "reference_forward", "reference_layer",
           "simulate"]
