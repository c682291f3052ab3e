"""The fixed-point type shared by the quantizer, the simulators and the RTL generator.

A :class:`FixedFormat` is a two's-complement (or unsigned) integer of ``width`` bits whose value
is ``integer * 2**-frac``. Changing format (*requantizing*) is pure integer arithmetic: an
arithmetic shift by the difference of fractional bits, rounded with the format's rounding mode,
then saturated or wrapped to the format's width with its overflow mode.

Rounding modes (applied when bits are shifted out):

``floor``
    toward minus infinity (a plain arithmetic right shift);
``half_up``
    to nearest, ties toward plus infinity (add half an LSB, then shift), the default;
``half_even``
    to nearest, ties to the even neighbour.

Overflow modes: ``saturate`` (clamp to the representable range, the default) and ``wrap``
(keep the low ``width`` bits, two's complement). Nothing wraps unless a format says so.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import HwlenetError

__all__ = [
    "MAX_WIDTH",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "FixedFormat",
    "requantize_int",
]

ROUNDING_MODES = ("floor", "half_up", "half_even")
OVERFLOW_MODES = ("saturate", "wrap")
MAX_WIDTH = 32


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point format: ``width`` bits, ``frac`` fractional bits, signed or not, plus the
    rounding and overflow modes used when a value is brought into this format.

    Parameters
    ----------
    width : int
        Total bits, 2..32 (accumulator formats may be wider: up to 63).
    frac : int
        Fractional bits; may be negative or exceed ``width``.
    signed : bool
        Two's complement when true.
    rounding : {"floor", "half_up", "half_even"}
    overflow : {"saturate", "wrap"}
    """

    width: int
    frac: int
    signed: bool = True
    rounding: str = "half_up"
    overflow: str = "saturate"

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool) or not (
            2 <= self.width <= 63
        ):
            raise HwlenetError(f"width must be an integer from 2 to 63, not {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise HwlenetError(f"frac must be an integer, not {self.frac!r}")
        if not isinstance(self.signed, bool):
            raise HwlenetError(f"signed must be a bool, not {self.signed!r}")
        if self.rounding not in ROUNDING_MODES:
            raise HwlenetError(f"rounding must be one of {ROUNDING_MODES}, not {self.rounding!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise HwlenetError(f"overflow must be one of {OVERFLOW_MODES}, not {self.overflow!r}")

    @property
    def min_int(self):
        """The smallest representable integer."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self):
        """The largest representable integer."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def max_abs_int(self):
        """The largest magnitude a representable integer can have."""
        return max(-self.min_int, self.max_int)

    @property
    def signed_width(self):
        """Bits of a two's-complement container for every integer of this format: ``width``,
        one more for an unsigned format (hardware that mixes formats works in these)."""
        return self.width + (0 if self.signed else 1)

    @property
    def lsb(self):
        """The value of one least significant bit, ``2**-frac``."""
        return math.ldexp(1.0, -self.frac)

    def quantize(self, values):
        """Float array to integers of this format (rounding and overflow as the format says).

        Used by the quantizer only, on float weights and tables. Values are scaled by
        ``2**frac`` exactly (a power of two), then rounded and brought into range.
        """
        scaled = np.ldexp(np.asarray(values, dtype=np.float64), self.frac)
        if not np.all(np.isfinite(scaled)):
            raise HwlenetError("cannot quantize NaN or infinite values")
        if self.rounding == "floor":
            rounded = np.floor(scaled)
        elif self.rounding == "half_up":
            rounded = np.floor(scaled + 0.5)
        else:
            rounded = np.round(scaled)
        return self._fit(np.clip(rounded, -(2.0**62), 2.0**62).astype(np.int64))

    def to_float(self, integers):
        """The real values of integers of this format."""
        return np.ldexp(np.asarray(integers, dtype=np.float64), -self.frac)

    def _fit(self, integers):
        if self.overflow == "saturate":
            return np.clip(integers, self.min_int, self.max_int)
        span = np.int64(1) << np.int64(self.width)
        return (integers - self.min_int) % span + self.min_int

    def to_dict(self):
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build a format from :meth:`to_dict` output, rejecting unknown or missing keys."""
        if not isinstance(data, dict):
            raise HwlenetError(f"a fixed-point format must be a mapping, not {data!r}")
        try:
            return cls(**data)
        except TypeError as error:
            raise HwlenetError(f"bad fixed-point format {data!r}: {error}") from None

    def __str__(self):
        kind = "s" if self.signed else "u"
        return f"{kind}{self.width}.{self.frac}({self.rounding},{self.overflow})"


def requantize_int(value, from_frac, fmt):
    """``value`` (an integer with ``from_frac`` fractional bits) requantized into ``fmt``.

    The obviously correct specification, in unbounded Python integers, that every other
    execution (:func:`hwlenet.sim.kernels.requantize_array`, the simulator, the RTL) must match
    bit for bit: for a right shift ``from_frac - fmt.frac > 0`` the floor of the quotient,
    rounded up by the format's rounding mode on the remainder; otherwise an exact left shift;
    then saturation or wrap into ``fmt``.
    """
    shift = from_frac - fmt.frac
    if shift > 0:
        quotient, remainder = divmod(value, 1 << shift)
        half = 1 << (shift - 1)
        if fmt.rounding == "half_up":
            quotient += remainder >= half
        elif fmt.rounding == "half_even":
            quotient += remainder > half or (remainder == half and quotient % 2 == 1)
    else:
        quotient = value * (1 << -shift)
    if fmt.overflow == "saturate":
        return min(max(quotient, fmt.min_int), fmt.max_int)
    span = 1 << fmt.width
    return (quotient - fmt.min_int) % span + fmt.min_int
