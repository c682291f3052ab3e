"""Compiled integer kernels of the bit-accurate simulator.

Private ``@njit`` kernels compute into arrays they are given; the public functions validate,
choose integer types and document. Everything is integer arithmetic. Accumulators are int32
when the layer's recorded accumulator width is at most 32 bits and int64 otherwise: the width
is a bound on every partial sum (each is a sum of terms whose magnitudes add up to at most the
bound), so neither type can overflow. Requantization always runs in int64.
"""

import numpy as np
from numba import njit, prange

from ..errors import HwlenetError

__all__ = [
    "ACTIVATION_CODES",
    "OVERFLOW_CODES",
    "ROUNDING_CODES",
    "conv_layer",
    "dense_layer",
    "maxpool_layer",
    "requantize_array",
    "subsample_layer",
]

ROUNDING_CODES = {"floor": 0, "half_up": 1, "half_even": 2}
OVERFLOW_CODES = {"saturate": 0, "wrap": 1}
ACTIVATION_CODES = {"none": 0, "relu": 1, "tanh": 2}


@njit(cache=True, inline="always")
def _requantize(value, shift, rounding, overflow, low, high, width):
    value = np.int64(value)
    if shift > 0:
        floor = value >> shift
        if rounding == 1:
            result = (value + (np.int64(1) << (shift - 1))) >> shift
        elif rounding == 2:
            remainder = value - (floor << shift)
            half = np.int64(1) << (shift - 1)
            result = floor
            if remainder > half or (remainder == half and (floor & 1) == 1):
                result += 1
        else:
            result = floor
    elif overflow == 1:
        # only the low ``width`` bits survive a wrap, so shift just those
        if -shift >= width:
            result = np.int64(0)
        else:
            result = (value & ((np.int64(1) << (width + shift)) - 1)) << (-shift)
    else:
        headroom = 62 + shift
        if value != 0 and (headroom <= 0 or value >= (np.int64(1) << headroom)
                           or value < -(np.int64(1) << headroom)):
            return high if value > 0 else low
        result = value << (-shift)
    if overflow == 0:
        if result < low:
            return low
        if result > high:
            return high
        return result
    return ((result - low) & ((np.int64(1) << width) - 1)) + low


@njit(cache=True, inline="always")
def _finish(acc, post, lut):
    shift, rounding, overflow, low, high, width, activation, lut_offset = post
    if activation == 1 and acc < 0:
        acc = 0
    value = _requantize(acc, shift, rounding, overflow, low, high, width)
    if activation == 2:
        return lut[value - lut_offset]
    return value


@njit(cache=True, parallel=True)
def _requantize_kernel(values, shift, rounding, overflow, low, high, width, out):
    for i in prange(values.size):
        out[i] = _requantize(values[i], shift, rounding, overflow, low, high, width)


@njit(cache=True, parallel=True)
def _conv_kernel(x, padded_width, weight, bias, post, lut, acc_zero, out):
    # x is (N, C, Hp * Wp): each padded map flattened, so a kernel tap is one long contiguous
    # multiply-add over every output row at once; the Wp - OW columns past a row's end are
    # computed and never read.
    images, channels = x.shape[0], x.shape[1]
    maps, kernel = weight.shape[0], weight.shape[2]
    out_h, out_w = out.shape[2], out.shape[3]
    span = (out_h - 1) * padded_width + out_w
    for n in prange(images):
        acc = np.empty(span, dtype=acc_zero.dtype)
        for m in range(maps):
            acc[:] = bias[m]
            for c in range(channels):
                plane = x[n, c]
                for ky in range(kernel):
                    for kx in range(kernel):
                        w = weight[m, c, ky, kx]
                        if w == 0:
                            continue
                        tap = plane[ky * padded_width + kx : ky * padded_width + kx + span]
                        for p in range(span):
                            acc[p] += w * tap[p]
            for oy in range(out_h):
                for ox in range(out_w):
                    out[n, m, oy, ox] = _finish(acc[oy * padded_width + ox], post, lut)


@njit(cache=True, parallel=True)
def _dense_kernel(x, weight, bias, post, lut, acc_zero, out):
    images, inputs = x.shape
    for n in prange(images):
        for m in range(weight.shape[0]):
            acc = acc_zero[0] + bias[m]
            for k in range(inputs):
                acc += weight[m, k] * x[n, k]
            out[n, m] = _finish(acc, post, lut)


@njit(cache=True, parallel=True)
def _subsample_kernel(x, coefficient, bias, post, lut, acc_zero, out):
    images, channels, out_h, out_w = out.shape
    for n in prange(images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    block = (x[n, c, 2 * oy, 2 * ox] + x[n, c, 2 * oy, 2 * ox + 1]
                             + x[n, c, 2 * oy + 1, 2 * ox] + x[n, c, 2 * oy + 1, 2 * ox + 1])
                    acc = acc_zero[0] + coefficient[c] * block + bias[c]
                    out[n, c, oy, ox] = _finish(acc, post, lut)


@njit(cache=True, parallel=True)
def _maxpool_kernel(x, out):
    images, channels, out_h, out_w = out.shape
    for n in prange(images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    out[n, c, oy, ox] = max(
                        max(x[n, c, 2 * oy, 2 * ox], x[n, c, 2 * oy, 2 * ox + 1]),
                        max(x[n, c, 2 * oy + 1, 2 * ox], x[n, c, 2 * oy + 1, 2 * ox + 1]))


def _int_type(fmt):
    fits = fmt.width <= 32 if fmt.signed else fmt.width <= 31
    return np.int32 if fits else np.int64


def _post(layer):
    fmt = layer.requant_format()
    post = (layer.requant_shift, ROUNDING_CODES[fmt.rounding],
            OVERFLOW_CODES[fmt.overflow], fmt.min_int, fmt.max_int, fmt.width,
            ACTIVATION_CODES[layer.activation], fmt.min_int)
    lut = layer.lut if layer.lut is not None else np.zeros(1, np.int64)
    return tuple(np.int64(v) for v in post), lut.astype(np.int64)


def _prepare(layer, x):
    if x.shape[1:] != tuple(layer.in_shape) and layer.kind != "dense":
        raise HwlenetError(f"layer {layer.name}: input shape {x.shape[1:]} != {layer.in_shape}")
    out = np.empty((x.shape[0], *layer.out_shape), dtype=_int_type(layer.output_format))
    if not layer.has_weights:
        return None, out, None, None
    acc_type = np.int32 if layer.accumulator_width <= 32 else np.int64
    post, lut = _post(layer)
    return acc_type, out, post, lut


def conv_layer(layer, x):
    """A ``conv`` layer of the artifact on integer inputs ``(N, C, H, W)``; integer outputs."""
    acc_type, out, post, lut = _prepare(layer, x)
    pad = layer.padding
    padded = np.pad(x.astype(acc_type), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    flat = padded.reshape(padded.shape[0], padded.shape[1], -1)
    _conv_kernel(flat, np.int64(padded.shape[3]), layer.weight.astype(acc_type),
                 layer.aligned_bias().astype(acc_type), post, lut, np.zeros(1, acc_type), out)
    return out


def dense_layer(layer, x):
    """A ``dense`` layer on integer inputs ``(N, ...)`` (flattened in C order)."""
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    if x.shape[1] != int(np.prod(layer.in_shape)):
        raise HwlenetError(f"layer {layer.name}: {x.shape[1]} inputs, expected "
                           f"{int(np.prod(layer.in_shape))}")
    acc_type, out, post, lut = _prepare(layer, x)
    _dense_kernel(x.astype(acc_type), layer.weight.astype(acc_type),
                  layer.aligned_bias().astype(acc_type), post, lut, np.zeros(1, acc_type), out)
    return out


def subsample_layer(layer, x):
    """A ``subsample`` layer (2x2 sum times coefficient plus bias) on ``(N, C, H, W)``."""
    acc_type, out, post, lut = _prepare(layer, x)
    _subsample_kernel(x.astype(acc_type), layer.weight.astype(acc_type),
                      layer.aligned_bias().astype(acc_type), post, lut, np.zeros(1, acc_type), out)
    return out


def maxpool_layer(layer, x):
    """A 2x2 ``maxpool`` layer on ``(N, C, H, W)``."""
    _, out, _, _ = _prepare(layer, x)
    _maxpool_kernel(x, out)
    return out


def requantize_array(values, from_frac, fmt):
    """:func:`hwlenet.quant.fixed.requantize_int` on an int64 array, compiled."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty_like(values)
    _requantize_kernel(values.ravel(), np.int64(from_frac - fmt.frac),
                       ROUNDING_CODES[fmt.rounding], OVERFLOW_CODES[fmt.overflow],
                       np.int64(fmt.min_int), np.int64(fmt.max_int), np.int64(fmt.width),
                       out.ravel())
    return out
