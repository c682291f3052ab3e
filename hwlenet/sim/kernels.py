"""Compiled integer kernels of the bit-accurate simulator.

Private ``@njit`` kernels compute into arrays they are given; the public functions validate,
choose integer types and document. Everything is integer arithmetic. Accumulators are int32
when the layer's recorded accumulator width is at most 32 bits and int64 otherwise: the width
is a bound on every partial sum (each is a sum of terms whose magnitudes add up to at most the
bound), so neither type can overflow. Requantization runs in int64 and equals
:func:`hwlenet.quant.fixed.requantize_int` for every int64 value and every shift, however far
it reaches past 63 bits either way.
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
    "finish_array",
    "maxpool_layer",
    "requantize_array",
    "run_layer",
    "subsample_layer",
]

ROUNDING_CODES = {"floor": 0, "half_up": 1, "half_even": 2}
OVERFLOW_CODES = {"saturate": 0, "wrap": 1}
ACTIVATION_CODES = {"none": 0, "relu": 1, "tanh": 2}


@njit(cache=True, inline="always")
def _low_mask(bits):
    """``2**bits - 1`` for ``0 <= bits <= 63``."""
    if bits >= 63:
        return np.int64(0x7FFFFFFFFFFFFFFF)
    return (np.int64(1) << bits) - 1


@njit(cache=True, inline="always")
def _wrap(value, low, high, width):
    """``value`` modulo ``2**width`` into ``low..high``, without any intermediate overflow."""
    bits = value & _low_mask(width)
    if bits > high:
        bits = bits - high - 1 + low
    return bits


@njit(cache=True, inline="always")
def _requantize(value, shift, rounding, overflow, low, high, width):
    # Exact for every int64 value and every shift: an int64 shifted right by 63 or more bits
    # is its sign (0 or -1), so right shifts are capped at 63, and the bounds are compared
    # before a left shift so that it never leaves int64.
    value = np.int64(value)
    if shift > 0:
        halves = value >> min(shift - 1, 63)  # floor(value / 2**(shift - 1))
        result = halves >> 1
        if rounding == 1:
            result += halves & 1
        elif rounding == 2 and halves & 1 == 1:
            # past 63 bits the half bit is set only for negative values, whose floor -1 is
            # odd, so whether the bits below it are zero does not matter there
            below = shift - 1
            if below >= 63 or value & _low_mask(below) != 0 or result & 1 == 1:
                result += 1
    else:
        left = min(-shift, 63)
        if overflow == 1:
            if left >= width:
                return np.int64(0)
            return _wrap((value & _low_mask(width - left)) << left, low, high, width)
        if value > high >> left:
            return high
        if value < -((-low) >> left):
            return low
        return value << left
    if overflow == 0:
        return min(max(result, low), high)
    return _wrap(result, low, high, width)


@njit(cache=True, inline="always")
def _finish(acc, post, lut):
    shift, rounding, overflow, low, high, width, activation, lut_offset = post
    if activation == 1 and acc < 0:
        acc = 0
    value = _requantize(acc, shift, rounding, overflow, low, high, width)
    if activation == 2:
        return lut[value - lut_offset]
    return value


@njit(cache=True)
def _finish_kernel(values, post, lut, out):
    for i in range(values.size):
        out[i] = _finish(values[i], post, lut)


@njit(cache=True)
def _requantize_kernel(values, shift, rounding, overflow, low, high, width, out):
    # serial: a few integer operations per element cost less than starting threads
    for i in range(values.size):
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


def run_layer(layer, x):
    """Any artifact layer on its integer inputs: the function of its ``kind``."""
    return {"conv": conv_layer, "dense": dense_layer, "subsample": subsample_layer,
            "maxpool": maxpool_layer}[layer.kind](layer, x)


def finish_array(layer, acc):
    """A layer's outputs from its accumulators (bias included), compiled: ReLU, requantize and
    the tanh table exactly as the layer kernels finish every output.

    Parameters
    ----------
    layer : QLayer
        A layer with weights.
    acc : numpy.ndarray of int
        Accumulators, any shape.

    Returns
    -------
    numpy.ndarray of int64, shaped like ``acc``
    """
    if not layer.has_weights:
        raise HwlenetError(f"layer {layer.name}: a {layer.kind} layer has no accumulators")
    values = np.ascontiguousarray(acc, dtype=np.int64)
    out = np.empty_like(values)
    post, lut = _post(layer)
    _finish_kernel(values.ravel(), post, lut, out.ravel())
    return out


def requantize_array(values, from_frac, fmt):
    """:func:`hwlenet.quant.fixed.requantize_int` on an int64 array, compiled.

    Exact for every int64 value and every integer shift ``from_frac - fmt.frac``.
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty_like(values)
    # every int64 requantizes alike at any shift beyond 64 bits either way
    shift = min(max(int(from_frac) - fmt.frac, -64), 64)
    _requantize_kernel(values.ravel(), np.int64(shift),
                       ROUNDING_CODES[fmt.rounding], OVERFLOW_CODES[fmt.overflow],
                       np.int64(fmt.min_int), np.int64(fmt.max_int), np.int64(fmt.width),
                       out.ravel())
    return out
