"""FPGA synthesis of an exported accelerator: Yosys and nextpnr from PyPI (YoWASP), resources,
Fmax and images per second for ECP5 and iCE40 targets, or a generic Yosys cell count."""

from .flow import synthesize
from .targets import TARGETS, Target, get_target

__all__ = ["TARGETS", "Target", "get_target", "synthesize"]
