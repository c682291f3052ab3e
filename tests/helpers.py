"""Random quantized layers over the whole range an artifact accepts, for property tests."""

import numpy as np

from hwlenet.quant.artifact import (MAX_ACCUMULATOR_WIDTH, MAX_LUT_WIDTH, MAX_SHIFT, QLayer,
                                    QuantizedModel, accumulator_bound)
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat

#: Widths a format may have (:class:`FixedFormat` accepts 2..63).
WIDTHS = (2, 63)
#: Fractional bits drawn for the formats a layer starts from.
FRACS = (-40, 40)


def random_format(rng, low_width, high_width, signed=None, frac=None):
    return FixedFormat(
        int(rng.integers(low_width, high_width, endpoint=True)),
        int(rng.integers(*FRACS, endpoint=True)) if frac is None else int(frac),
        bool(rng.integers(2)) if signed is None else signed,
        ROUNDING_MODES[rng.integers(3)], OVERFLOW_MODES[rng.integers(2)],
    )


def random_ints(rng, fmt, shape):
    """Integers of ``fmt``: uniform, with a quarter of them at the format's extremes."""
    values = rng.integers(fmt.min_int, fmt.max_int, size=shape, dtype=np.int64, endpoint=True)
    extreme = rng.random(shape)
    values[extreme < 0.125] = fmt.min_int
    values[(extreme >= 0.125) & (extreme < 0.25)] = fmt.max_int
    return values


def _widest(rng):
    """The widest width to draw from: half the time narrow, so that 32-bit accumulators and
    narrow formats are as common as the widest ones."""
    return int(rng.choice([12, WIDTHS[1]]))


def _requant_shift(rng, low, acc_bits, out_width):
    """A right shift (negative: left) in ``low..MAX_SHIFT``: a third uniform, a third near the
    shift that keeps the accumulator's top bits, a third at the ends of the range and around
    the 63/64-bit boundaries."""
    choice = rng.integers(3)
    if choice == 0:
        shift = int(rng.integers(low, MAX_SHIFT, endpoint=True))
    elif choice == 1:
        shift = acc_bits - out_width + int(rng.integers(-3, 3, endpoint=True))
    else:
        shift = int(rng.choice([low, low + 1, 0, 1, 31, 32, 33, 61, 62, 63, MAX_SHIFT - 1,
                                MAX_SHIFT]))
    return min(max(shift, low), MAX_SHIFT)


def random_layer(seed, kind):
    """A random layer of ``kind`` that :meth:`QuantizedModel.validate` accepts, and a batch of
    inputs for it.

    Widths, fractional bits, shifts (bias and requantization, left and right up to
    ``MAX_SHIFT``), accumulator widths (up to 63 bits, sometimes wider than needed), signedness,
    rounding and overflow modes and activations are drawn from the whole accepted range.
    """
    rng = np.random.default_rng(seed)
    in_fmt = random_format(rng, 2, _widest(rng))
    channels, size = int(rng.integers(1, 4)), 2 * int(rng.integers(2, 5))
    maps, kernel, padding = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 0
    if kind == "conv":
        padding = int(rng.integers(0, 3))
        in_shape = (channels, size, size)
        out_side = size + 2 * padding - kernel + 1
        out_shape = (maps, out_side, out_side)
        w_shape = (maps, channels, kernel, kernel)
        fan = channels * kernel * kernel
    elif kind == "dense":
        in_shape, out_shape = (int(rng.integers(1, 40)),), (maps,)
        w_shape = (maps, in_shape[0])
        fan = in_shape[0]
    else:
        in_shape = (channels, size, size)
        out_shape = (channels, size // 2, size // 2)
        w_shape = (channels,)
        fan = 4
    x = random_ints(rng, in_fmt, (int(rng.integers(1, 4)), *in_shape))
    if kind == "maxpool":
        return QLayer("p", kind, in_shape, out_shape, in_fmt, in_fmt), x

    # |acc| <= fan * |w| * |x| + |aligned bias| must stay below 2**62 (63 signed bits): keep
    # the product within 2**61 and the aligned bias below 2**61
    in_bits = in_fmt.max_abs_int.bit_length()
    budget = 62 - int(fan - 1).bit_length() - in_bits
    w_fmt = random_format(rng, 2, max(2, min(budget, _widest(rng))), signed=True)
    weight = random_ints(rng, w_fmt, w_shape)
    weight[rng.random(w_shape) < 0.2] = 0
    if budget < 2:
        weight[...] = 0
    acc_frac = w_fmt.frac + in_fmt.frac
    bias_shift = int(rng.integers(0, rng.choice([8, MAX_SHIFT]), endpoint=True))
    bias_width = int(rng.integers(2, max(2, min(61 - bias_shift, _widest(rng))), endpoint=True))
    b_fmt = random_format(rng, bias_width, bias_width, signed=True, frac=acc_frac - bias_shift)
    bias = random_ints(rng, b_fmt, w_shape[0])
    if bias_width + bias_shift > 61:
        bias[:] = 0
    activation = ("none", "relu", "tanh")[rng.integers(3)]
    layer = QLayer("l", kind, in_shape, out_shape, in_fmt, in_fmt, activation,
                   weight=weight, weight_format=w_fmt, bias=bias, bias_format=b_fmt,
                   padding=padding)
    needed = max(2, accumulator_bound(layer).bit_length() + 1)
    layer.accumulator_width = needed if rng.integers(2) else int(
        rng.integers(needed, MAX_ACCUMULATOR_WIDTH, endpoint=True))
    out_fmt = random_format(rng, *WIDTHS)
    requant_width = int(rng.integers(2, MAX_LUT_WIDTH, endpoint=True)) \
        if activation == "tanh" else out_fmt.width
    shift = _requant_shift(rng, layer.accumulator_width - MAX_ACCUMULATOR_WIDTH, needed,
                           requant_width)
    requant = random_format(rng, requant_width, requant_width, frac=acc_frac - shift)
    if activation == "tanh":
        layer.pre_format = requant
        layer.lut = random_ints(rng, out_fmt, 1 << requant_width)
        layer.output_format = out_fmt
    else:
        layer.output_format = requant
    return layer, x


def as_model(layer):
    """A :class:`QuantizedModel` of ``layer`` followed by a zero dense layer to 10 logits, so
    that :meth:`QuantizedModel.validate` can judge ``layer``."""
    out = layer.output_format
    fmt = FixedFormat(2, 0)
    tail = QLayer("tail", "dense", tuple(layer.out_shape), (10,), out,
                  FixedFormat(2, out.frac), weight=np.zeros((10, int(np.prod(layer.out_shape))),
                                                            np.int64),
                  weight_format=fmt, bias=np.zeros(10, np.int64),
                  bias_format=FixedFormat(2, out.frac), accumulator_width=2)
    return QuantizedModel("lenet5-relu", layer.input_format, [layer, tail])


def netlist_flip_flop(d, q, *, clock, enable=None, reset="0", regset="RESET"):
    """A ``TRELLIS_FF`` of Yosys's ECP5 JSON netlist from net ``d`` to net ``q``: on ``clock``'s
    rising edge, with a clock enable and a reset net when given, initial value 0 unless
    ``regset`` is ``"SET"``."""
    connections = {"CLK": [clock], "DI": [d], "LSR": [reset], "Q": [q]}
    directions = {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"}
    if enable is not None:
        connections["CE"], directions["CE"] = [enable], "input"
    return {"type": "TRELLIS_FF", "port_directions": directions, "connections": connections,
            "parameters": {"CEMUX": "CE" if enable is not None else "1 ", "CLKMUX": "CLK",
                           "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": regset}}
