"""Random quantized layers for property tests."""

import numpy as np

from hwlenet.quant.artifact import QLayer, accumulator_bound
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from hwlenet.quant.quantize import tanh_table


def random_format(rng, low_width, high_width, signed=None, frac_range=(-3, 12)):
    return FixedFormat(
        int(rng.integers(low_width, high_width + 1)), int(rng.integers(*frac_range)),
        bool(rng.integers(2)) if signed is None else signed,
        ROUNDING_MODES[rng.integers(3)], OVERFLOW_MODES[rng.integers(2)],
    )


def random_ints(rng, fmt, shape):
    return rng.integers(fmt.min_int, fmt.max_int + 1, size=shape, dtype=np.int64)


def random_layer(seed, kind, wide=False):
    """A consistent random layer of ``kind`` and a batch of inputs for it."""
    rng = np.random.default_rng(seed)
    in_fmt = random_format(rng, 2, 16 if wide else 9)
    channels, size = int(rng.integers(1, 4)), 2 * int(rng.integers(2, 5))
    maps, kernel, padding = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 0
    if kind == "conv":
        padding = int(rng.integers(0, 3))
        in_shape = (channels, size, size)
        out_side = size + 2 * padding - kernel + 1
        out_shape = (maps, out_side, out_side)
        w_shape = (maps, channels, kernel, kernel)
    elif kind == "dense":
        in_shape, out_shape = (int(rng.integers(1, 40)),), (maps,)
        w_shape = (maps, in_shape[0])
    else:
        in_shape = (channels, size, size)
        out_shape = (channels, size // 2, size // 2)
        w_shape = (channels,)
    x = random_ints(rng, in_fmt, (int(rng.integers(1, 4)), *in_shape))
    if kind == "maxpool":
        return QLayer("p", kind, in_shape, out_shape, in_fmt, in_fmt), x
    w_fmt = random_format(rng, 2, 24 if wide else 10, signed=True)
    weight = random_ints(rng, w_fmt, w_shape)
    weight[rng.random(w_shape) < 0.2] = 0
    acc_frac = w_fmt.frac + in_fmt.frac
    b_fmt = random_format(rng, 2, 16, signed=True, frac_range=(acc_frac - 6, acc_frac + 1))
    activation = ("none", "relu", "tanh")[rng.integers(3)]
    out_fmt = random_format(rng, 2, 16)
    layer = QLayer("l", kind, in_shape, out_shape, in_fmt, out_fmt, activation,
                   weight=weight, weight_format=w_fmt, bias=random_ints(rng, b_fmt, maps if
                   kind != "subsample" else channels), bias_format=b_fmt, padding=padding)
    if activation == "tanh":
        layer.pre_format = random_format(rng, 2, 10, signed=True,
                                         frac_range=(acc_frac - 20, acc_frac + 2))
        layer.lut = tanh_table(layer.pre_format, out_fmt)
    else:
        layer.output_format = FixedFormat(out_fmt.width, int(rng.integers(acc_frac - 20,
                                          acc_frac + 3)), out_fmt.signed, out_fmt.rounding,
                                          out_fmt.overflow)
    layer.accumulator_width = accumulator_bound(layer).bit_length() + 1
    return layer, x
