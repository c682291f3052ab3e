"""The slow, obviously correct reference execution of a quantized artifact.

Every accumulator is an unbounded Python integer and every requantization is
:func:`hwlenet.quant.fixed.requantize_int`, element by element, exactly as the artifact's module
docstring states the semantics. Meant for tests on a handful of images.
"""

import numpy as np

from ..quant.fixed import requantize_int

__all__ = ["reference_layer", "reference_forward"]


def _finish(layer, acc):
    """Activation and requantization of one Python-integer accumulator."""
    if layer.activation == "relu":
        acc = max(acc, 0)
    fmt = layer.requant_format()
    value = requantize_int(acc, layer.acc_frac, fmt)
    if layer.activation == "tanh":
        return int(layer.lut[value - fmt.min_int])
    return value


def reference_layer(layer, x):
    """One layer on one image's integer input (any integer array); returns an int64 array."""
    bias = [int(b) << layer.bias_shift for b in layer.bias] if layer.has_weights else None
    if layer.kind == "dense":
        flat = [int(v) for v in np.asarray(x).ravel()]
        out = [_finish(layer, bias[m] + sum(int(w) * v for w, v in zip(row, flat)))
               for m, row in enumerate(layer.weight)]
        return np.array(out, dtype=np.int64)
    x = np.asarray(x).astype(object)
    out = np.zeros(layer.out_shape, dtype=np.int64)
    channels, out_h, out_w = layer.out_shape
    if layer.kind == "conv":
        pad = layer.padding
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        kernel = layer.weight.shape[2]
        weight = layer.weight.astype(object)
        for m in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    window = x[:, oy : oy + kernel, ox : ox + kernel]
                    out[m, oy, ox] = _finish(layer, bias[m] + int((weight[m] * window).sum()))
        return out
    for c in range(channels):
        for oy in range(out_h):
            for ox in range(out_w):
                block = [int(v) for v in x[c, 2 * oy : 2 * oy + 2, 2 * ox : 2 * ox + 2].ravel()]
                if layer.kind == "maxpool":
                    out[c, oy, ox] = max(block)
                else:
                    out[c, oy, ox] = _finish(layer, int(layer.weight[c]) * sum(block) + bias[c])
    return out


def reference_forward(qmodel, image):
    """Every layer's integer output for one uint8 image ``(28, 28)``, in layer order."""
    x = np.asarray(image, dtype=np.int64).reshape(qmodel.layers[0].in_shape)
    outputs = []
    for layer in qmodel.layers:
        x = reference_layer(layer, x)
        outputs.append(x)
    return outputs
