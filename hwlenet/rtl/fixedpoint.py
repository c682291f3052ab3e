"""Fixed-point requantization as a combinational Amaranth expression."""

from amaranth.hdl import Mux, signed, unsigned

__all__ = ["fit", "format_shape", "requantize", "round_shift"]


def format_shape(fmt):
    """The Amaranth shape of integers of ``fmt``."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def round_shift(value, shift, rounding):
    """``value`` arithmetically shifted right by ``shift`` bits (left for a negative shift) and
    rounded by ``rounding`` ("half_up", "half_even" or "floor"), at full width: the first half of
    :func:`requantize`, which a pipeline may register before :func:`fit`."""
    if shift <= 0:
        return value << -shift
    floor = value >> shift
    if rounding == "half_up":
        return (value + (1 << (shift - 1))) >> shift
    if rounding == "half_even":
        # a value narrower than the shift has a remainder with bits above its own
        remainder = (value[:shift] if shift <= len(value)
                     else (value - (floor << shift))[:shift])
        half = 1 << (shift - 1)
        return floor + ((remainder > half) | ((remainder == half) & floor[0]))
    return floor


def fit(value, fmt):
    """``value`` brought into ``fmt`` with its overflow mode (saturation or wrap): the second
    half of :func:`requantize`. Returns a value of shape :func:`format_shape` ``(fmt)``."""
    if fmt.overflow == "saturate":
        value = Mux(value < fmt.min_int, fmt.min_int, Mux(value > fmt.max_int, fmt.max_int, value))
    bits = value[: fmt.width]
    return bits.as_signed() if fmt.signed else bits


def requantize(value, shift, fmt):
    """``value`` (a signed Amaranth value with ``shift`` more fractional bits than ``fmt``)
    requantized into ``fmt``: arithmetic shift with the format's rounding, then saturation or
    wrap with its overflow mode, exactly as :func:`hwlenet.quant.fixed.requantize_int`.

    Returns a value of shape :func:`format_shape` ``(fmt)``.
    """
    return fit(round_shift(value, shift, fmt.rounding), fmt)
