"""The post-processor's per-job arithmetic as combinational Amaranth expressions.

These are the steps between a drained accumulator and a stored result, written once so that the
:class:`~hwlenet.rtl.postproc.PostProcessor` and the proofs of :mod:`hwlenet.rtl.prove` build the
very same logic:

* :func:`requantize_layer`: ReLU if the layer has it, then requantize into the layer's
  :meth:`~hwlenet.quant.artifact.QLayer.requant_format` (the table index format for tanh);
* :func:`window_total`: a subsampling layer's ``coef * (x00 + x01 + x10 + x11) + bias``;
* :func:`table_address`: where a table index lands in a ROM holding the table from ``base``.
"""

from amaranth.hdl import Mux

from .fixedpoint import fit, round_shift

__all__ = ["divmod_constant", "fit_layer", "requantize_layer", "round_layer", "scaled",
           "table_address", "window_sum", "window_total"]


def requantize_layer(total, layer):
    """``requantize(max(total, 0) if relu else total)`` from the layer's accumulator fraction
    into :meth:`~hwlenet.quant.artifact.QLayer.requant_format`.

    Parameters
    ----------
    total : amaranth.hdl.Value
        Signed accumulator integer, bias included.
    layer : QLayer
        A layer with weights (conv, dense or subsample).

    Returns
    -------
    amaranth.hdl.Value
        Of shape :func:`~hwlenet.rtl.fixedpoint.format_shape` ``(layer.requant_format())``.
    """
    return fit_layer(round_layer(total, layer), layer)


def round_layer(total, layer):
    """The first half of :func:`requantize_layer`: ReLU if the layer has it, then the rounded
    shift, at full width."""
    value = Mux(total < 0, 0, total) if layer.activation == "relu" else total
    return round_shift(value, layer.requant_shift, layer.requant_format().rounding)


def fit_layer(rounded, layer):
    """The second half of :func:`requantize_layer`: saturation or wrap into the layer's
    :meth:`~hwlenet.quant.artifact.QLayer.requant_format`."""
    return fit(rounded, layer.requant_format())


def window_sum(window):
    """The sum of one 2x2 window of four signed values."""
    return window[0] + window[1] + window[2] + window[3]


def window_total(window, coef, bias):
    """A subsampling layer's accumulator for one 2x2 window of four signed values:
    ``coef * window_sum(window) + bias``."""
    return coef * window_sum(window) + bias


def table_address(base, index, fmt):
    """ROM address of table entry ``index - fmt.min_int`` for a table stored from ``base``."""
    return base + index - fmt.min_int


def scaled(value, constant):
    """``value * constant`` for a non-negative integer ``constant``: for an Amaranth value, a
    sum of shifted copies of ``value`` (one per set bit), so that synthesis spends adders, not
    a hardware multiplier, on an address formula; for a Python integer, the product."""
    if not isinstance(constant, int) or constant < 0:
        raise TypeError(f"constant must be a non-negative integer, not {constant!r}")
    if isinstance(value, int):
        return value * constant
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    if not terms:
        return value & 0
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def divmod_constant(value, divisor, limit):
    """``divmod(value, divisor)`` for a non-negative ``value`` below ``limit`` and a positive
    integer ``divisor``: for an Amaranth value, bit slices when ``divisor`` is a power of two,
    else a count of the ``limit // divisor`` comparisons ``value >= k * divisor`` (no hardware
    divider); for a Python integer, the quotient and remainder."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise TypeError(f"divisor must be a positive integer, not {divisor!r}")
    if isinstance(value, int):
        return divmod(value, divisor)
    shift = divisor.bit_length() - 1
    if divisor == 1 << shift:
        return value >> shift, value & (divisor - 1)
    steps = [value >= k * divisor for k in range(1, -(-limit // divisor))]
    if not steps:
        return value & 0, value
    quotient = steps[0]
    for step in steps[1:]:
        quotient = quotient + step
    return quotient, (value - scaled(quotient, divisor)).as_unsigned()
