"""Fixed-point requantization as a combinational Amaranth expression."""

from amaranth.hdl import Mux, signed, unsigned

__all__ = ["format_shape", "requantize"]


def format_shape(fmt):
    """The Amaranth shape of integers of ``fmt``."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def requantize(value, shift, fmt):
    """``value`` (a signed Amaranth value with ``shift`` more fractional bits than ``fmt``)
    requantized into ``fmt``: arithmetic shift with the format's rounding, then saturation or
    wrap with its overflow mode, exactly as :func:`hwlenet.quant.fixed.requantize_int`.

    Returns a value of shape :func:`format_shape` ``(fmt)``.
    """
    if shift > 0:
        floor = value >> shift
        if fmt.rounding == "half_up":
            rounded = (value + (1 << (shift - 1))) >> shift
        elif fmt.rounding == "half_even":
            # a value narrower than the shift has a remainder with bits above its own
            remainder = (value[:shift] if shift <= len(value)
                         else (value - (floor << shift))[:shift])
            half = 1 << (shift - 1)
            rounded = floor + ((remainder > half) | ((remainder == half) & floor[0]))
        else:
            rounded = floor
    else:
        rounded = value << -shift
    if fmt.overflow == "saturate":
        rounded = Mux(rounded < fmt.min_int, fmt.min_int,
                      Mux(rounded > fmt.max_int, fmt.max_int, rounded))
    bits = rounded[: fmt.width]
    return bits.as_signed() if fmt.signed else bits
