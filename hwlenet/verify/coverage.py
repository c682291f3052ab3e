"""Coverage of test vectors: which tanh table entries and weight words they exercise, which
weight words they make live, which weight-bit flips of dense layers they make visible, which
table entries and flips no input can ever reach or show, and directed vectors that reach the
rest.

A co-simulation compares every value the RTL writes, but a corrupted table entry or weight only
shows when some vector uses it. Everything here is counted with the integer semantics of the
artifact (:mod:`hwlenet.quant.artifact`), run by the compiled simulator kernels:

table entry
    Entry ``i - pre_format.min_int`` of a tanh layer's table is *hit* when some output element
    of some image (every position of a convolution) has table index ``i``. The index is what
    the layer computes with its table removed (:func:`index_layer`).
weight word
    A weight is *exercised* when it multiplies a non-zero input for at least one image and one
    output: for ``conv`` some output position whose window (zero padding included) holds a
    non-zero input at that tap, for ``dense`` a non-zero input ``x[k]``, for ``subsample`` a
    non-zero 2x2 block sum. Whether a word is exercised depends only on its *weight input*:
    the tap ``(c, ky, kx)``, the input ``k`` or the channel ``c``.
live weight word
    In a ReLU layer, a change of a weight only shows when its product meets a positive
    accumulator: word ``(m, k)`` of a ``dense`` layer is *live* when some image has a non-zero
    input ``x[k]`` and an accumulator ``acc[m] > 0``; word ``(m, c, ky, kx)`` of a ``conv``
    layer when some image and output position of map ``m`` have ``acc > 0`` and a non-zero
    input at that tap. Later layers (max-pooling) may still hide the change; this notion does
    not follow them. In a layer without ReLU a word is live when it is exercised. A word whose
    input is idle, or whose unit (map) the interval analysis proves never positive, can never
    be live.
visible flip
    A single-bit fault of a ``dense`` layer's weight (bit ``b`` of the ``weight_format`` pattern
    of word ``(m, k)``) is *visible* when, for some image, the layer's output ``m`` computed with
    the flipped weight differs from the true one: the changed accumulator
    ``acc[m] + (w' - w) * x[k]`` must survive the ReLU, the rounding and saturation of the
    requantization, and the table. This is exactly what a comparison of that layer's outputs
    sees; a live word can still hide a flip of a low-order bit in the rounding.
invisible flip
    A flip that :func:`flip_proofs` proves no input can make visible, from the intervals of
    the reachability analysis below (:class:`FlipProof`); faultcheck counts the faults of such
    flips as unobservable.
reachable entry
    :func:`reachable_tables` propagates sound integer intervals from the pixels: per output
    element, the accumulator bounds that the weight signs allow for the input intervals,
    requantized (a monotone map) to index bounds; the next layer's input interval is the
    table's range over those indices (or the requantized bounds). An entry outside every
    element's index interval can never be hit by any image; the others may or may not be.
    Likewise a weight input whose interval is ``[0, 0]`` everywhere is provably *idle*.

Table indices are reported as ``pre_format`` integers ``i`` (table entry ``i - index_min``);
index ranges are inclusive ``[low, high]`` pairs.
"""

import dataclasses
import heapq

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.nn import functional as F
from tqdm import tqdm

from ..errors import HwlenetError
from ..quant.artifact import accumulator_bound
from ..quant.fixed import FixedFormat, requantize_int
from ..sim import kernels
from ..sim.simulator import check_images

__all__ = [
    "FlipProof",
    "coverage_report",
    "directed_vectors",
    "flip_proofs",
    "index_layer",
    "live_hits",
    "reachable_tables",
    "table_hits",
    "weight_hits",
]

_SEARCH_LIMIT = 1 << 62
# a relaxed index within this distance of the target's centre counts as on target
_MARGIN = 0.2
# the share of the flip search's images that focus on one unit
_FOCUS = 0.5


def _check_images(qmodel, images):
    images = check_images(images)
    if tuple(qmodel.layers[0].in_shape) != (1, 28, 28):
        raise HwlenetError(f"the model's input shape {tuple(qmodel.layers[0].in_shape)} is not "
                           "(1, 28, 28)")
    return images


def _check_count(name, value, least=0):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer of at least {least}")
        raise HwlenetError(f"{name} must be {kind}, not {value!r}")
    return int(value)


def index_layer(layer):
    """A copy of a tanh layer without its table, whose output is the table index.

    Parameters
    ----------
    layer : QLayer
        A layer with ``activation == "tanh"``.

    Returns
    -------
    QLayer
        ``layer`` with ``activation="none"``, ``output_format=layer.pre_format`` and no table;
        run by the same kernel, it outputs ``i = requantize(acc, acc_frac, pre_format)``.
    """
    if layer.activation != "tanh":
        raise HwlenetError(f"layer {layer.name} has no table (activation {layer.activation})")
    return dataclasses.replace(layer, activation="none", output_format=layer.pre_format, lut=None)


def _sign_layer(layer):
    """A copy of a ReLU layer whose output is ``1`` where its accumulator is positive, else
    ``<= 0``: no activation, and the accumulator saturated to a 2-bit format of its own
    fractional bits (no shift, so no rounding)."""
    fmt = FixedFormat(2, layer.acc_frac, signed=True, overflow="saturate")
    return dataclasses.replace(layer, activation="none", output_format=fmt, lut=None)


def _walk(qmodel, images, chunk):
    """Per chunk of images: a list of ``(layer, input, table index or None, acc > 0 or
    None)``, one per layer; the last is a bool array of the output shape for ReLU layers."""
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].reshape(-1, *qmodel.layers[0].in_shape)
        steps = []
        for layer in qmodel.layers:
            run = kernels.run_layer
            index = run(index_layer(layer), x) if layer.activation == "tanh" else None
            on = run(_sign_layer(layer), x) > 0 if layer.activation == "relu" else None
            steps.append((layer, x, index, on))
            x = run(layer, x)
        yield steps


def _table_rows(layer, index):
    """Per image, which entries of the layer's table it hits: bool ``(N, entries)``."""
    count = len(index)
    rows = np.zeros((count, 1 << layer.pre_format.width), dtype=bool)
    rows[np.arange(count)[:, None], index.reshape(count, -1) - layer.pre_format.min_int] = True
    return rows


def _input_hits(layer, x):
    """Per image, which weight inputs of the layer are non-zero: bool ``(N, C, K, K)`` taps for
    ``conv`` (anywhere in the tap's window), ``(N, K)`` for ``dense`` and ``(N, C)`` block sums
    for ``subsample``."""
    count = len(x)
    if layer.kind == "dense":
        return x.reshape(count, -1) != 0
    if layer.kind == "subsample":
        c, h, w = x.shape[1:]
        # four inputs of more than 61 bits can overflow int64
        exact = np.int64 if layer.input_format.width <= 61 else object
        sums = x.astype(exact).reshape(count, c, h // 2, 2, w // 2, 2).sum(axis=(3, 5))
        return (sums != 0).any(axis=(2, 3))
    k = layer.weight.shape[2]
    hits = np.zeros((count, x.shape[1], k, k), dtype=bool)
    for ky, kx, window in _tap_windows(layer, x):
        hits[:, :, ky, kx] = window.any(axis=2)
    return hits


def _tap_windows(layer, x):
    """Per tap ``(ky, kx)`` of a conv layer: which inputs it meets at each output position,
    bool ``(N, C, H_out * W_out)``."""
    pad, k = layer.padding, layer.weight.shape[2]
    padded = np.pad(x != 0, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = layer.out_shape[1], layer.out_shape[2]
    for ky in range(k):
        for kx in range(k):
            window = padded[:, :, ky : ky + out_h, kx : kx + out_w]
            yield ky, kx, window.reshape(len(x), x.shape[1], -1)


def _live_rows(layer, x, on):
    """Per image, which words of a ReLU layer are live: bool ``(N, *weight.shape)``."""
    count = len(x)
    if layer.kind == "dense":
        nonzero = x.reshape(count, -1) != 0
        return on.reshape(count, -1)[:, :, None] & nonzero[:, None, :]
    # a count of positions, at most H_out * W_out, is exact in float32
    positive = on.reshape(count, on.shape[1], -1).astype(np.float32)
    live = np.zeros((count, *layer.weight.shape), dtype=bool)
    for ky, kx, window in _tap_windows(layer, x):
        live[:, :, :, ky, kx] = positive @ window.astype(np.float32).transpose(0, 2, 1) > 0
    return live


def _live_any(layer, x, on):
    """Which words of a ReLU layer some image makes live: bool, shaped like the weight."""
    if layer.kind != "dense":
        return _live_rows(layer, x, on).any(axis=0)
    # counts of at most len(x) images, exact in float64
    positive = on.reshape(len(x), -1).astype(np.float64)
    nonzero = (x.reshape(len(x), -1) != 0).astype(np.float64)
    return positive.T @ nonzero > 0


def _flip_deltas(layer):
    """Per word and bit ``b`` of a dense layer's ``weight_format``: the change of the weight
    when that bit of its pattern flips, int64 ``(*weight.shape, width)``; ``None`` when the
    changed accumulators could leave int64."""
    if layer.kind != "dense":
        return None
    fmt = layer.weight_format
    largest = accumulator_bound(layer) + (1 << fmt.width) * layer.input_format.max_abs_int
    if fmt.width > 62 or largest >= 1 << 63:
        return None
    weight = layer.weight.astype(np.int64)[..., None]
    flipped = (weight & ((1 << fmt.width) - 1)) ^ (np.int64(1) << np.arange(fmt.width))
    if fmt.signed:
        flipped = np.where(flipped >= 1 << (fmt.width - 1), flipped - (1 << fmt.width), flipped)
    return flipped - weight


def _visible_rows(layer, x, deltas):
    """Per image of ``x``: the inputs it makes non-zero and which bit flips of those inputs'
    weights (``deltas`` from :func:`_flip_deltas`) change the layer's output for it, as
    ``(used, bool (units, len(used), bits))`` pairs."""
    x = x.reshape(len(x), -1).astype(np.int64)
    acc = x @ layer.weight.T.astype(np.int64) + layer.aligned_bias()
    before = kernels.finish_array(layer, acc)
    for row, sums, outputs in zip(x, acc, before):
        used = np.flatnonzero(row)
        after = kernels.finish_array(layer, sums[:, None, None] + deltas[:, used] * row[used, None])
        yield used, after != outputs[:, None, None]


def _visible_flips(layer, x, deltas):
    """Which bit flips of a dense layer's weights (``deltas`` from :func:`_flip_deltas`)
    change its output for some image of ``x``: bool, shaped like ``deltas``."""
    visible = np.zeros(deltas.shape, dtype=bool)
    for used, shown in _visible_rows(layer, x, deltas):
        visible[:, used] |= shown
    return visible


def _input_shape(layer):
    if layer.kind == "dense":
        return (layer.weight.shape[1],)
    return layer.weight.shape[1:] if layer.kind == "conv" else layer.weight.shape


def _scan(qmodel, images, chunk, flips=False):
    """One simulation pass: the table entries hit, the weight inputs made non-zero, the live
    words of ReLU layers and, with ``flips``, the visible flips of dense layers (``None`` where
    :func:`_flip_deltas` is), each over all images."""
    images = _check_images(qmodel, images)
    chunk = _check_count("chunk", chunk, 1)
    tables = {layer.name: np.zeros(1 << layer.pre_format.width, dtype=bool)
              for layer in qmodel.layers if layer.activation == "tanh"}
    inputs = {layer.name: np.zeros(_input_shape(layer), dtype=bool)
              for layer in qmodel.layers if layer.has_weights}
    live = {layer.name: np.zeros(layer.weight.shape, dtype=bool)
            for layer in qmodel.layers if layer.activation == "relu"}
    deltas = {layer.name: _flip_deltas(layer) for layer in qmodel.layers
              if flips and layer.kind == "dense"}
    visible = {name: None if change is None else np.zeros(change.shape, dtype=bool)
               for name, change in deltas.items()}
    for steps in _walk(qmodel, images, chunk):
        for layer, x, index, on in steps:
            if index is not None:
                tables[layer.name][index.ravel() - layer.pre_format.min_int] = True
            if layer.has_weights:
                inputs[layer.name] |= _input_hits(layer, x).any(axis=0)
            if on is not None:
                live[layer.name] |= _live_any(layer, x, on)
            if visible.get(layer.name) is not None:
                visible[layer.name] |= _visible_flips(layer, x, deltas[layer.name])
    return tables, inputs, live, visible


def _words(layer, inputs):
    """Per weight word, the value of its weight input (broadcast to the weight's shape)."""
    return np.broadcast_to(inputs, layer.weight.shape).copy()


def table_hits(qmodel, images, chunk=1000):
    """Which table entries the images index.

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8, shape (N, 28, 28)
    chunk : int
        Images per batch of the simulator.

    Returns
    -------
    dict
        Layer name to a bool array of ``2**pre_format.width`` entries, for every tanh layer;
        entry ``e`` is true when some output element of some image has index
        ``e + pre_format.min_int``.
    """
    return _scan(qmodel, images, chunk)[0]


def weight_hits(qmodel, images, chunk=1000):
    """Which weight words the images exercise.

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8, shape (N, 28, 28)
    chunk : int
        Images per batch of the simulator.

    Returns
    -------
    dict
        Layer name to a bool array shaped like ``layer.weight``, for every layer with weights:
        true where the weight multiplies a non-zero input for some image and output (see the
        module docstring).
    """
    inputs = _scan(qmodel, images, chunk)[1]
    return {layer.name: _words(layer, inputs[layer.name])
            for layer in qmodel.layers if layer.has_weights}


def live_hits(qmodel, images, chunk=1000):
    """Which weight words the images make live (see the module docstring).

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8, shape (N, 28, 28)
    chunk : int
        Images per batch of the simulator.

    Returns
    -------
    dict
        Layer name to a bool array shaped like ``layer.weight``, for every layer with weights:
        in a ReLU layer true where the weight meets a non-zero input while its unit's
        accumulator is positive, for some image (and output position); elsewhere as
        :func:`weight_hits`.
    """
    _, inputs, live, _ = _scan(qmodel, images, chunk)
    return {layer.name: live[layer.name] if layer.name in live
            else _words(layer, inputs[layer.name])
            for layer in qmodel.layers if layer.has_weights}


# --- reachability ------------------------------------------------------------------------------


def _wide(fmt):
    """``fmt`` with rounding only: signed, 63 bits, saturating (beyond any format's range)."""
    return dataclasses.replace(fmt, width=63, signed=True, overflow="saturate")


def _requantize_bounds(acc_lo, acc_hi, acc_frac, fmt):
    """Sound bounds of ``requantize(acc, acc_frac, fmt)`` for ``acc`` in ``[acc_lo, acc_hi]``.

    Rounding and saturation are monotone; a wrapping format is only exact when no value of the
    interval leaves its range, and otherwise may produce any of its integers.
    """
    low = kernels.requantize_array(acc_lo, acc_frac, fmt)
    high = kernels.requantize_array(acc_hi, acc_frac, fmt)
    if fmt.overflow == "wrap":
        wide = _wide(fmt)
        escapes = ((kernels.requantize_array(acc_lo, acc_frac, wide) < fmt.min_int)
                   | (kernels.requantize_array(acc_hi, acc_frac, wide) > fmt.max_int))
        low = np.where(escapes, fmt.min_int, low)
        high = np.where(escapes, fmt.max_int, high)
    return low, high


def _accumulator_bounds(layer, lo, hi):
    """Per output element, the least and greatest accumulator for inputs in ``[lo, hi]``."""
    weight = layer.weight.astype(np.int64)
    positive, negative = np.maximum(weight, 0), np.minimum(weight, 0)
    bias = layer.aligned_bias()
    if layer.kind == "dense":
        lo, hi = lo.ravel(), hi.ravel()
        return (positive @ lo + negative @ hi + bias, positive @ hi + negative @ lo + bias)
    if layer.kind == "subsample":
        c, h, w = lo.shape
        sum_lo = lo.reshape(c, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
        sum_hi = hi.reshape(c, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
        coefficient, offset = weight[:, None, None], bias[:, None, None]
        return (np.where(coefficient >= 0, coefficient * sum_lo, coefficient * sum_hi) + offset,
                np.where(coefficient >= 0, coefficient * sum_hi, coefficient * sum_lo) + offset)
    pad, k = layer.padding, weight.shape[2]
    windows = [sliding_window_view(np.pad(bound, ((0, 0), (pad, pad), (pad, pad))), (k, k),
                                   axis=(1, 2)) for bound in (lo, hi)]
    offset = bias[:, None, None]
    least = (np.einsum("cyxij,mcij->myx", windows[0], positive)
             + np.einsum("cyxij,mcij->myx", windows[1], negative) + offset)
    greatest = (np.einsum("cyxij,mcij->myx", windows[1], positive)
                + np.einsum("cyxij,mcij->myx", windows[0], negative) + offset)
    return least, greatest


def _propagate(qmodel):
    """Interval analysis of every layer, from the whole range of the input format.

    Returns a list (one dict per layer) of int64 arrays: ``in_lo``/``in_hi`` (input shape),
    ``acc_lo``/``acc_hi`` (output shape, layers with weights), ``index_lo``/``index_hi``
    (tanh layers) and ``out_lo``/``out_hi``.
    """
    fmt = qmodel.input_format
    shape = tuple(qmodel.layers[0].in_shape)
    lo = np.full(shape, fmt.min_int, dtype=np.int64)
    hi = np.full(shape, fmt.max_int, dtype=np.int64)
    analysis = []
    for layer in qmodel.layers:
        lo, hi = lo.reshape(layer.in_shape), hi.reshape(layer.in_shape)
        entry = {"in_lo": lo, "in_hi": hi}
        if layer.kind == "maxpool":
            c, h, w = lo.shape
            out_lo = lo.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
            out_hi = hi.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
        else:
            acc_lo, acc_hi = _accumulator_bounds(layer, lo, hi)
            entry.update(acc_lo=acc_lo, acc_hi=acc_hi)
            if layer.activation == "relu":
                acc_lo, acc_hi = np.maximum(acc_lo, 0), np.maximum(acc_hi, 0)
            low, high = _requantize_bounds(acc_lo, acc_hi, layer.acc_frac,
                                           layer.requant_format())
            if layer.activation == "tanh":
                entry.update(index_lo=low, index_hi=high)
                out_lo, out_hi = _table_range(layer, low, high)
            else:
                out_lo, out_hi = low, high
        entry.update(out_lo=out_lo.reshape(layer.out_shape), out_hi=out_hi.reshape(layer.out_shape))
        analysis.append(entry)
        lo, hi = entry["out_lo"], entry["out_hi"]
    return analysis


def _table_range(layer, low, high):
    """Least and greatest table value over each element's index interval."""
    base = layer.pre_format.min_int
    lut = layer.lut.astype(np.int64)
    pairs, inverse = np.unique(np.stack([low.ravel(), high.ravel()], axis=1), axis=0,
                               return_inverse=True)
    values = np.array([(lut[a - base : b - base + 1].min(), lut[a - base : b - base + 1].max())
                       for a, b in pairs], dtype=np.int64)[inverse.ravel()]
    return values[:, 0].reshape(low.shape), values[:, 1].reshape(high.shape)


def _runs(mask, base):
    """Inclusive ``[low, high]`` runs of true entries, as indices ``entry + base``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [[int(a) + base, int(b) + base] for a, b in zip(starts, stops)]


def _least_acc_reaching(index, acc_frac, fmt):
    """The least accumulator whose rounded (not yet saturated or wrapped) index is >= index."""
    wide = _wide(fmt)
    low, high = -_SEARCH_LIMIT, _SEARCH_LIMIT
    while low < high:
        middle = (low + high) // 2
        if requantize_int(middle, acc_frac, wide) >= index:
            high = middle
        else:
            low = middle + 1
    return low


def _unit_name(layer, flat):
    position = np.unravel_index(flat, tuple(layer.out_shape))
    if len(position) == 1:
        return f"unit {int(position[0])}"
    return f"map {int(position[0])} at ({int(position[1])}, {int(position[2])})"


def _input_source(qmodel, position):
    if position == 0:
        return "the pixels and the zero padding" if qmodel.layers[0].padding else "the pixels"
    previous = qmodel.layers[position - 1]
    if previous.activation == "tanh":
        return f"the values of {previous.name}'s table over its reachable indices"
    return f"the reachable outputs of {previous.name}"


def _unreachable_reasons(qmodel, position, entry):
    layer = qmodel.layers[position]
    pre = layer.pre_format
    index_lo, index_hi = entry["index_lo"].ravel(), entry["index_hi"].ravel()
    acc_lo, acc_hi = entry["acc_lo"].ravel(), entry["acc_hi"].ravel()
    mask = np.zeros(1 << pre.width, dtype=bool)
    for a, b in np.unique(np.stack([index_lo, index_hi], axis=1), axis=0):
        mask[a - pre.min_int : b - pre.min_int + 1] = True
    inputs = (f"inputs in [{int(entry['in_lo'].min())}, {int(entry['in_hi'].max())}] "
              f"({_input_source(qmodel, position)})")
    conversion = f"requantizing the accumulator (frac {layer.acc_frac}) to {pre}"
    unreachable = []
    for low, high in _runs(~mask, pre.min_int):
        if high < index_lo.min():
            bound = _least_acc_reaching(high + 1, layer.acc_frac, pre)
            least = int(acc_lo.argmin())
            reason = (f"index <= {high} needs acc < {bound} ({conversion}), below the smallest "
                      f"accumulator these weights and biases can produce from {inputs}: "
                      f"{int(acc_lo[least])} ({_unit_name(layer, least)})")
        elif low > index_hi.max():
            bound = _least_acc_reaching(low, layer.acc_frac, pre)
            greatest = int(acc_hi.argmax())
            reason = (f"index >= {low} needs acc >= {bound} ({conversion}), above the largest "
                      f"accumulator these weights and biases can produce from {inputs}: "
                      f"{int(acc_hi[greatest])} ({_unit_name(layer, greatest)})")
        else:
            bound_low = _least_acc_reaching(low, layer.acc_frac, pre)
            bound_high = _least_acc_reaching(high + 1, layer.acc_frac, pre) - 1
            below = int(acc_hi[index_hi < low].max())
            above = int(acc_lo[index_lo > high].min())
            reason = (f"index in [{low}, {high}] needs acc in [{bound_low}, {bound_high}] "
                      f"({conversion}); from {inputs}, the outputs that can go lower reach at "
                      f"most acc {below} and the others at least acc {above}")
        unreachable.append({"low": low, "high": high, "reason": reason})
    return mask, unreachable


def _idle_inputs(layer, entry):
    """Per weight input (see :func:`_input_hits`): true when the interval analysis proves the
    input zero for every image, so its weights can never be exercised."""
    zero = (entry["in_lo"] == 0) & (entry["in_hi"] == 0)
    if layer.kind == "dense":
        return zero.ravel()
    if layer.kind == "subsample":
        return zero.all(axis=(1, 2))
    pad, k = layer.padding, layer.weight.shape[2]
    padded = np.pad(zero, ((0, 0), (pad, pad), (pad, pad)), constant_values=True)
    out_h, out_w = layer.out_shape[1], layer.out_shape[2]
    idle = np.zeros((zero.shape[0], k, k), dtype=bool)
    for ky in range(k):
        for kx in range(k):
            idle[:, ky, kx] = padded[:, ky : ky + out_h, kx : kx + out_w].all(axis=(1, 2))
    return idle


def _never_live(layer, idle, entry):
    """Per word of a ReLU layer: true when it can never be live, because its input is idle or
    the interval analysis proves its unit's (map's) accumulator never positive."""
    dead = entry["acc_hi"].reshape(layer.weight.shape[0], -1).max(axis=1) <= 0
    never = _words(layer, idle)
    never[dead] = True
    return never


def _constant_between(layer, low, high):
    """Where the layer's finish (ReLU, requantization, table) gives one output for every
    accumulator in ``[low, high]`` (int64 arrays, ``low <= high``): bool, shaped alike.

    Rounding is monotone, so the rounded values of the ends bound all others; saturation keeps
    the index monotone and a table is constant where it has no change between the two
    indices; a wrapping format is only proven constant where the rounded ends agree.
    """
    fmt = layer.requant_format()
    if layer.activation == "relu":
        low, high = np.maximum(low, 0), np.maximum(high, 0)
    wide = _wide(fmt)
    rounded_low = kernels.requantize_array(low, layer.acc_frac, wide)
    rounded_high = kernels.requantize_array(high, layer.acc_frac, wide)
    constant = rounded_low == rounded_high
    if fmt.overflow == "saturate":
        index_low = np.clip(rounded_low, fmt.min_int, fmt.max_int) - fmt.min_int
        index_high = np.clip(rounded_high, fmt.min_int, fmt.max_int) - fmt.min_int
        if layer.lut is None:
            constant |= index_low == index_high
        else:
            lut = layer.lut.astype(np.int64)
            changes = np.concatenate([[0], np.cumsum(lut[1:] != lut[:-1])])
            constant |= changes[index_low] == changes[index_high]
    return constant


@dataclasses.dataclass(eq=False)
class FlipProof:
    """The interval analysis of single-bit flips of one dense layer's weights.

    For flip ``(m, k, b)`` (bit ``b`` of the ``weight_format`` pattern of word ``(m, k)``,
    changing it from ``w`` to ``w'``), every image has ``acc = rest + w * x`` and
    ``acc' = rest + w' * x``, with ``rest`` the accumulator without input ``k``, bounded by
    the interval analysis of :func:`reachable_tables`, and ``x`` the input, within its
    interval. For the inputs of each sign (``x = 0`` changes nothing) both accumulators lie in
    a *window* ``[low, high]``: the least ``rest`` plus the least of ``w * x`` and ``w' * x``
    at the ends of the sign's input range, up to the greatest ``rest`` plus the greatest. A
    flip is *invisible* when over every window the layer's finish (ReLU, requantization,
    table) is constant (:func:`_constant_between`): no image can change the layer's output, so
    no comparison of it or of any later layer can see the flip.

    Attributes
    ----------
    layer : QLayer
    invisible : numpy.ndarray of bool, shape (units, inputs, bits)
    low, high : numpy.ndarray of int64, shape (2, units, inputs, bits)
        The windows for positive (index 0) and negative (index 1) inputs.
    signs : numpy.ndarray of bool, shape (2, inputs)
        Whether the input's interval holds positive (index 0) and negative (index 1) values.
    input_low, input_high : numpy.ndarray of int64, shape (inputs,)
    rest_low, rest_high : numpy.ndarray of int64, shape (units, inputs)
    deltas : numpy.ndarray of int64, shape (units, inputs, bits)
        ``w' - w`` (see :func:`_flip_deltas`).
    """

    layer: object
    invisible: np.ndarray
    low: np.ndarray
    high: np.ndarray
    signs: np.ndarray
    input_low: np.ndarray
    input_high: np.ndarray
    rest_low: np.ndarray
    rest_high: np.ndarray
    deltas: np.ndarray

    def reason(self, unit, item, bit):
        """Why flip ``(unit, item, bit)`` is invisible, in words, or None when not proven."""
        if not self.invisible[unit, item, bit]:
            return None
        layer = self.layer
        weight = int(layer.weight[unit, item])
        flipped = weight + int(self.deltas[unit, item, bit])
        head = (f"flipping bit {bit} of {layer.name} weight [{unit}, {item}] ({weight} -> "
                f"{flipped}) can never change {layer.name}'s output {unit}")
        low, high = int(self.input_low[item]), int(self.input_high[item])
        if not self.signs[:, item].any():
            return f"{head}: its input {item} is 0 for every image (interval [{low}, {high}])"
        windows = []
        for sign, name in enumerate(("positive", "negative")):
            if not self.signs[sign, item]:
                continue
            a, b = int(self.low[sign, unit, item, bit]), int(self.high[sign, unit, item, bit])
            output = int(kernels.finish_array(layer, np.array([a]))[0])
            windows.append(f"for {name} inputs both accumulators lie in [{a}, {b}], where the "
                           f"output is always {output}")
        return (f"{head}: input {item} is in [{low}, {high}], the accumulator without it in "
                f"[{int(self.rest_low[unit, item])}, {int(self.rest_high[unit, item])}] "
                f"(interval analysis); {'; '.join(windows)}")


def _flip_proof(layer, entry):
    """The :class:`FlipProof` of a dense layer from its interval analysis ``entry``, or None
    where :func:`_flip_deltas` is."""
    deltas = _flip_deltas(layer)
    if deltas is None:
        return None
    weight = layer.weight.astype(np.int64)
    x_low, x_high = entry["in_lo"].ravel(), entry["in_hi"].ravel()
    term_low = np.minimum(weight * x_low, weight * x_high)
    term_high = np.maximum(weight * x_low, weight * x_high)
    rest_low = entry["acc_lo"].ravel()[:, None] - term_low
    rest_high = entry["acc_hi"].ravel()[:, None] - term_high
    flipped = weight[..., None] + deltas
    ranges = ((np.maximum(x_low, 1), x_high), (x_low, np.minimum(x_high, -1)))
    lows, highs, signs = [], [], []
    for first, last in ranges:
        ends = np.stack(np.broadcast_arrays(*(factor * x[None, :, None]
                                              for factor in (weight[..., None], flipped)
                                              for x in (first, last))))
        lows.append(rest_low[..., None] + ends.min(axis=0))
        highs.append(rest_high[..., None] + ends.max(axis=0))
        signs.append(first <= last)
    low, high, signs = np.stack(lows), np.stack(highs), np.stack(signs)
    held = signs[:, None, :, None]
    low, high = np.where(held, low, 0), np.where(held, high, 0)
    invisible = (~held | _constant_between(layer, low, high)).all(axis=0)
    return FlipProof(layer, invisible, low, high, signs, x_low, x_high, rest_low, rest_high,
                     deltas)


def flip_proofs(qmodel):
    """Single-bit flips of dense layers' weights that no input can make visible.

    Parameters
    ----------
    qmodel : QuantizedModel

    Returns
    -------
    dict
        Layer name to :class:`FlipProof` for every dense layer whose changed accumulators fit
        int64 (see :func:`coverage_report`): its ``invisible`` flips provably never change the
        layer's output, for any input of the model's input format, and ``reason`` says why.
        Flips not proven invisible may or may not be visible.
    """
    analysis = _propagate(qmodel)
    proofs = {}
    for position, layer in enumerate(qmodel.layers):
        if layer.kind == "dense":
            proof = _flip_proof(layer, analysis[position])
            if proof is not None:
                proofs[layer.name] = proof
    return proofs


def _reachability(qmodel):
    """The interval analysis, per tanh layer the reachable mask and JSON-ready summary, per
    layer with weights its provably idle inputs, per ReLU layer the words that can never be
    live, and per dense layer (where :func:`_flip_deltas` is not None) the provably invisible
    weight-bit flips."""
    analysis = _propagate(qmodel)
    tables, idle, never, invisible = {}, {}, {}, {}
    for position, layer in enumerate(qmodel.layers):
        entry = analysis[position]
        if layer.has_weights:
            idle[layer.name] = _idle_inputs(layer, entry)
        if layer.activation == "relu":
            never[layer.name] = _never_live(layer, idle[layer.name], entry)
        if layer.kind == "dense":
            proof = _flip_proof(layer, entry)
            if proof is not None:
                invisible[layer.name] = proof.invisible
        if layer.activation != "tanh":
            continue
        mask, unreachable = _unreachable_reasons(qmodel, position, entry)
        pre = layer.pre_format
        tables[layer.name] = {
            "mask": mask,
            "summary": {
                "entries": int(mask.size),
                "index_min": pre.min_int,
                "index_max": pre.max_int,
                "low": int(entry["index_lo"].min()),
                "high": int(entry["index_hi"].max()),
                "reachable": int(mask.sum()),
                "reachable_runs": _runs(mask, pre.min_int),
                "accumulator": [int(entry["acc_lo"].min()), int(entry["acc_hi"].max())],
                "input": [int(entry["in_lo"].min()), int(entry["in_hi"].max())],
                "unreachable": unreachable,
            },
        }
    return analysis, tables, idle, never, invisible


def reachable_tables(qmodel):
    """The table entries that some input might reach, by sound interval analysis.

    Parameters
    ----------
    qmodel : QuantizedModel

    Returns
    -------
    dict
        Layer name to a JSON-ready dict for every tanh layer: ``entries``, ``index_min`` and
        ``index_max`` (the ``pre_format`` range), ``low`` and ``high`` (the least and greatest
        reachable index), ``reachable`` (count), ``reachable_runs`` (``[low, high]`` runs),
        ``accumulator`` and ``input`` (the propagated ``[least, greatest]`` bounds), and
        ``unreachable``: ``{low, high, reason}`` for each run of entries no image can hit,
        with the reason in words. Entries outside the reachable runs are provably never
        indexed; entries inside are not proven reachable.
    """
    tables = _reachability(qmodel)[1]
    return {name: table["summary"] for name, table in tables.items()}


def coverage_report(qmodel, images, chunk=1000, flips=True):
    """Table and weight coverage of a set of vectors, JSON-ready.

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8, shape (N, 28, 28)
    chunk : int
        Images per batch of the simulator.
    flips : bool
        Also count the visible single-bit weight flips of dense layers (the costly part: about
        a millisecond per image and layer).

    Returns
    -------
    dict
        ``images`` (N) and ``layers``: per layer ``name``;

        ``table`` (``None`` without a table): ``entries``, ``reachable``, ``hit``,
        ``fraction`` (hit / entries), ``fraction_of_reachable`` (hit / reachable),
        ``unreachable`` (``{low, high, reason}`` runs no image can hit) and ``missed``
        (``[low, high]`` runs of reachable entries no image hits);

        ``weights`` (``None`` without weights): ``words``, ``exercised``, ``fraction``
        (exercised / words), ``idle`` (words whose input is provably zero for every image),
        ``fraction_of_possible`` (exercised / (words - idle)), ``live`` (live words, see the
        module docstring; equal to ``exercised`` without ReLU), ``live_fraction`` (live /
        words), ``never_live`` (words the analysis proves can never be live: ``idle`` plus,
        with ReLU, the words of units never positive), ``live_fraction_of_possible``
        (live / (words - never_live)), ``flips`` (single-bit weight faults: words times
        weight bits), ``visible_flips`` and ``visible_flip_fraction`` (those that change the
        layer's output for some image, and their share), ``invisible_flips`` (those that
        :func:`flip_proofs` proves no input can make visible) and
        ``visible_flip_fraction_of_possible`` (visible / (flips - invisible)); these five are
        ``None`` but for dense layers whose changed accumulators fit int64, and always without
        ``flips``.

    Raises
    ------
    HwlenetError
        If an image hits what the analysis proved unreachable (a bug, never expected).
    """
    images = _check_images(qmodel, images)
    tables, inputs, live, visible = _scan(qmodel, images, chunk, flips=flips)
    _, reach, idle, never, invisible = _reachability(qmodel)
    layers = []
    for layer in qmodel.layers:
        row = {"name": layer.name, "table": None, "weights": None}
        if layer.activation == "tanh":
            hits, mask = tables[layer.name], reach[layer.name]["mask"]
            if (hits & ~mask).any():
                raise HwlenetError(f"layer {layer.name}: an image hits a table entry the "
                                   "interval analysis proved unreachable")
            reachable = int(mask.sum())
            row["table"] = {
                "entries": int(hits.size),
                "reachable": reachable,
                "hit": int(hits.sum()),
                "fraction": float(hits.sum() / hits.size),
                "fraction_of_reachable": float(hits.sum() / reachable) if reachable else 1.0,
                "unreachable": reach[layer.name]["summary"]["unreachable"],
                "missed": _runs(mask & ~hits, layer.pre_format.min_int),
            }
        if layer.has_weights:
            if (inputs[layer.name] & idle[layer.name]).any():
                raise HwlenetError(f"layer {layer.name}: an image makes an input non-zero that "
                                   "the interval analysis proved zero")
            exercised = int(_words(layer, inputs[layer.name]).sum())
            words = int(layer.weight.size)
            unused = int(_words(layer, idle[layer.name]).sum())
            lively, impossible = exercised, unused
            if layer.name in live:
                if (live[layer.name] & never[layer.name]).any():
                    raise HwlenetError(f"layer {layer.name}: an image makes a weight live that "
                                       "the interval analysis proved never live")
                lively, impossible = int(live[layer.name].sum()), int(never[layer.name].sum())
            row["weights"] = {
                "words": words,
                "exercised": exercised,
                "fraction": exercised / words,
                "idle": unused,
                "fraction_of_possible": exercised / (words - unused) if words > unused else 1.0,
                "live": lively,
                "live_fraction": lively / words,
                "never_live": impossible,
                "live_fraction_of_possible": (lively / (words - impossible)
                                              if words > impossible else 1.0),
                "flips": None,
                "visible_flips": None,
                "visible_flip_fraction": None,
                "invisible_flips": None,
                "visible_flip_fraction_of_possible": None,
            }
            if visible.get(layer.name) is not None:
                shown, hidden = visible[layer.name], invisible[layer.name]
                if (shown & hidden).any():
                    raise HwlenetError(f"layer {layer.name}: an image makes a weight-bit flip "
                                       "visible that the interval analysis proved invisible")
                possible = int(shown.size - hidden.sum())
                row["weights"].update(
                    flips=int(shown.size), visible_flips=int(shown.sum()),
                    visible_flip_fraction=float(shown.mean()), invisible_flips=int(hidden.sum()),
                    visible_flip_fraction_of_possible=(int(shown.sum()) / possible if possible
                                                       else 1.0))
        layers.append(row)
    return {"images": int(len(images)), "layers": layers}


# --- directed vectors --------------------------------------------------------------------------


class _Relaxation:
    """A differentiable stand-in for the integer model that only steers the search.

    Values are carried in the integer units of each format: the accumulator is scaled to
    ``requant_format`` units, rounding is a straight-through estimate, and a tanh layer looks
    its table up at the rounded, saturated index, with the slope of a smoothed table as its
    gradient (never flat, so saturated units can be pulled back); likewise the ReLU and the
    saturation pass ``leak`` of the gradient where they are flat, so that a unit that is off
    can be turned on. It follows the integer model closely but not exactly (the values are
    exact, up to float32 rounding; the gradients are estimates); hits are only ever counted
    by the simulator.
    """

    def __init__(self, qmodel, smoothing=4, leak=0.02):
        self.leak = leak
        self.layers = []
        for layer in qmodel.layers:
            spec = {"layer": layer}
            if layer.has_weights:
                scale = 2.0 ** -layer.requant_shift
                spec["weight"] = torch.from_numpy(layer.weight * scale).float()
                spec["bias"] = torch.from_numpy(layer.aligned_bias() * scale).float()
                fmt = layer.requant_format()
                spec["range"] = (float(fmt.min_int), float(fmt.max_int))
            if layer.activation == "tanh":
                lut = layer.lut.astype(np.float64)
                width = 2 * smoothing + 1
                slope = np.gradient(np.convolve(np.pad(lut, smoothing, mode="edge"),
                                                np.ones(width) / width, mode="valid"))
                direction = 1.0 if lut[-1] >= lut[0] else -1.0
                least = leak * abs(float(lut[-1] - lut[0])) / len(lut)
                spec["lut"] = torch.from_numpy(lut).float()
                spec["slope"] = torch.from_numpy(
                    direction * np.maximum(direction * slope, least)).float()
            self.layers.append(spec)

    @staticmethod
    def _table(spec, index):
        low, high = spec["range"]
        entry = (torch.floor(index.detach() + 0.5).clamp_(low, high) - low).long()
        return spec["lut"][entry] + spec["slope"][entry] * (index - index.detach())

    def pre_activations(self, pixels, depth):
        """Per layer with weights at positions up to ``depth``: the relaxed accumulator in
        ``requant_format`` units, before the activation (the table index of a tanh layer)."""
        return self.run(pixels, depth)[0]

    def run(self, pixels, depth):
        """:meth:`pre_activations` and, per layer at positions up to ``depth``, its relaxed
        output (in its output format's units)."""
        x, found, outputs = pixels, {}, {}
        for position, spec in enumerate(self.layers[: depth + 1]):
            layer = spec["layer"]
            if layer.kind == "maxpool":
                x = outputs[position] = F.max_pool2d(x, 2)
                continue
            if layer.kind == "conv":
                acc = F.conv2d(x, spec["weight"], spec["bias"], padding=layer.padding)
            elif layer.kind == "dense":
                acc = x.flatten(1) @ spec["weight"].T + spec["bias"]
            else:
                acc = (F.avg_pool2d(x, 2) * 4 * spec["weight"].view(1, -1, 1, 1)
                       + spec["bias"].view(1, -1, 1, 1))
            found[position] = acc
            if layer.activation == "tanh":
                x = outputs[position] = self._table(spec, acc)
                continue
            if layer.activation == "relu":
                # a unit that is off still passes a little gradient, or no target behind it
                # could ever turn it on
                acc = F.relu(acc) + self.leak * (acc - acc.detach())
            rounded = acc + (torch.floor(acc + 0.5) - acc).detach()
            x = rounded.clamp(*spec["range"]) + self.leak * (rounded - rounded.detach())
            outputs[position] = x
        return found, outputs


def _receptive_boxes(qmodel, position):
    """Per output element of layer ``position`` (spatial layers): its input pixel box
    ``(y0, y1, x0, x1)`` (inclusive, clipped to the image), shape ``(H, W, 4)``."""
    layer = qmodel.layers[position]
    out_h, out_w = layer.out_shape[1], layer.out_shape[2]
    ys, xs = np.mgrid[:out_h, :out_w]
    boxes = np.stack([ys, ys, xs, xs], axis=-1).astype(np.int64)
    for layer in reversed(qmodel.layers[: position + 1]):
        if layer.kind == "conv":
            k, pad = layer.weight.shape[2], layer.padding
            boxes = boxes + np.array([-pad, k - 1 - pad, -pad, k - 1 - pad])
        else:
            boxes = boxes * 2 + np.array([0, 1, 0, 1])
        height, width = layer.in_shape[1], layer.in_shape[2]
        boxes = np.clip(boxes, 0, [height - 1, height - 1, width - 1, width - 1])
    return boxes


def _slots(qmodel, position):
    """Output positions of a spatial layer whose input boxes are pairwise disjoint, the
    largest boxes first."""
    boxes = _receptive_boxes(qmodel, position)
    height, width = boxes.shape[:2]
    area = (boxes[..., 1] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 2] + 1)
    order = sorted(range(height * width), key=lambda flat: (-area.flat[flat], flat))
    taken = np.zeros(qmodel.layers[0].in_shape[1:], dtype=bool)
    chosen = []
    for flat in order:
        y0, y1, x0, x1 = boxes.reshape(-1, 4)[flat]
        if not taken[y0 : y1 + 1, x0 : x1 + 1].any():
            taken[y0 : y1 + 1, x0 : x1 + 1] = True
            chosen.append(flat)
    return chosen


class _Pool:
    """Candidate vectors and the coverage items each hits beyond the ordinary vectors.

    Items are the table entries of every tanh layer, then the weight inputs of every layer with
    weights, then the words of every ReLU layer that can be live, then, given ``invisible``
    (layer name to the proven-invisible flips of :func:`flip_proofs`), the weight-bit flips of
    those dense layers (each flattened, in layer order); an item is *possible* unless the
    interval analysis rules it out.
    """

    #: Images per simulator batch when flips are counted (a row holds every flip).
    FLIP_CHUNK = 64

    def __init__(self, qmodel, tables, idle, never, base, chunk, invisible=None):
        self.qmodel, self.chunk = qmodel, chunk
        invisible = invisible or {}
        self.deltas = {}
        self.segments, possible, offset = {}, [], 0
        for kind in ("table", "inputs", "live", "flips"):
            for position, layer in enumerate(qmodel.layers):
                if kind == "table" and layer.activation == "tanh":
                    possible.append(tables[layer.name]["mask"])
                elif kind == "inputs" and layer.has_weights:
                    possible.append(~idle[layer.name].ravel())
                elif kind == "live" and layer.activation == "relu":
                    possible.append(~never[layer.name].ravel())
                elif kind == "flips" and layer.name in invisible:
                    possible.append(~invisible[layer.name].ravel())
                    self.deltas[position] = _flip_deltas(layer)
                else:
                    continue
                self.segments[(kind, position)] = (offset, possible[-1].size)
                offset += possible[-1].size
        if self.deltas:
            self.chunk = min(chunk, self.FLIP_CHUNK)
        possible = np.concatenate(possible)
        self.observed = {}
        self.images, self.hits = [], []
        self.covered = np.zeros(possible.size, dtype=bool)
        if base is not None:
            for rows in self._rows(base):
                self.covered |= rows.any(axis=0)
        self.universe = possible & ~self.covered

    def _rows(self, images):
        """Per chunk, the items each image hits ``(n, items)``; records each tanh map's least
        and greatest observed index."""
        for steps in _walk(self.qmodel, images, self.chunk):
            parts = []
            for kind, position in self.segments:
                layer, x, index, on = steps[position]
                if kind == "inputs":
                    parts.append(_input_hits(layer, x).reshape(len(x), -1))
                    continue
                if kind == "live":
                    parts.append(_live_rows(layer, x, on).reshape(len(x), -1))
                    continue
                if kind == "flips":
                    deltas = self.deltas[position]
                    rows = np.zeros((len(x), *deltas.shape), dtype=bool)
                    for row, (used, shown) in zip(rows, _visible_rows(layer, x, deltas)):
                        row[:, used] = shown
                    parts.append(rows.reshape(len(x), -1))
                    continue
                parts.append(_table_rows(layer, index))
                per_map = index.reshape(len(index), index.shape[1], -1)
                low, high = per_map.min(axis=(0, 2)), per_map.max(axis=(0, 2))
                if position in self.observed:
                    low = np.minimum(low, self.observed[position][0])
                    high = np.maximum(high, self.observed[position][1])
                self.observed[position] = (low, high)
            yield np.concatenate(parts, axis=1)

    def offer(self, images):
        """Keep each image that hits a possible item no kept image or ordinary vector hits."""
        start = 0
        for rows in self._rows(images):
            for row, image in zip(rows, images[start : start + len(rows)]):
                useful = row & self.universe
                if (useful & ~self.covered).any():
                    self.images.append(image)
                    self.hits.append(np.flatnonzero(useful).astype(np.int32))
                    self.covered |= useful
            start += len(rows)

    def open(self):
        """How many possible items no image hits yet."""
        return int((self.universe & ~self.covered).sum())

    def missed(self, kind, position):
        """Flat item numbers within one segment that are possible but not hit yet."""
        offset, size = self.segments[(kind, position)]
        part = slice(offset, offset + size)
        return np.flatnonzero(self.universe[part] & ~self.covered[part])

    def cover(self, limit):
        """Greedy set cover of the kept images' items: indices into ``self.images``, each the
        image with the most items not yet covered (the first on ties)."""
        remaining = self.covered & self.universe
        # gains only shrink, so a stale gain bounds the true one (lazy greedy): an image whose
        # fresh gain still beats every stale one is the greedy choice
        heap = [(-len(hits), image) for image, hits in enumerate(self.hits)]
        heapq.heapify(heap)
        chosen = []
        while heap and len(chosen) < limit:
            _, image = heapq.heappop(heap)
            gain = int(remaining[self.hits[image]].sum())
            if gain == 0:
                continue
            if heap and (-gain, image) > heap[0]:
                heapq.heappush(heap, (-gain, image))
                continue
            chosen.append(image)
            remaining[self.hits[image]] = False
        return chosen


def _structured_images(images, rng):
    """Blank, saturated, checkerboard, striped, noisy and rescaled-digit candidates."""
    ys, xs = np.mgrid[:28, :28]
    patterns = [np.zeros((28, 28)), np.full((28, 28), 255), np.full((28, 28), 128)]
    for period in (1, 2, 3, 4, 7):
        checker = ((ys // period + xs // period) % 2) * 255
        patterns += [checker, 255 - checker]
    for period in (2, 3, 4, 6):
        for stripes in ((ys // period) % 2 * 255, (xs // period) % 2 * 255):
            patterns += [stripes, 255 - stripes]
    for density in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95):
        patterns += list((rng.random((4, 28, 28)) < density) * 255)
    patterns += list(rng.integers(0, 256, (8, 28, 28)))
    if images is not None and len(images):
        digits = images[:64].astype(np.float64)
        patterns += list(digits * 0.5) + list(digits * 2) + list(255 - digits)
    return np.clip(np.rint(np.array(patterns)), 0, 255).astype(np.uint8)


def _table_targets(qmodel, pool, analysis, slots, rng, batch, restart, first):
    """Targets ``(image, layer position, element, low, high, weight)`` for missed table
    entries, tanh layers in order, and the number of images they use: the relaxed value of the
    element (see :meth:`_Relaxation.pre_activations`) is to lie in ``[low, high]``, which
    weighs ``weight`` in the search.

    Each entry gets an output element whose interval contains it, on a map whose observed
    indices came closest (from ``restart`` 1 on, at random among the ``1 + restart`` closest),
    packed into disjoint receptive fields of as few images as possible, numbered from
    ``first``; at most ``batch`` images.
    """
    targets, images = [], 0
    for kind, position in pool.segments:
        if kind != "table" or images >= batch:
            continue
        layer = qmodel.layers[position]
        pre, maps = layer.pre_format, layer.out_shape[0]
        lows = analysis[position]["index_lo"].reshape(maps, -1)
        highs = analysis[position]["index_hi"].reshape(maps, -1)
        area = lows.shape[1]
        places_of = slots[position] if slots[position] is not None else [0]
        lows, highs = lows[:, places_of], highs[:, places_of]
        observed_lo, observed_hi = pool.observed[position]
        free = []  # per image of this layer, its unused places
        for entry in pool.missed("table", position):
            index = int(entry) + pre.min_int
            fits = (lows <= index) & (highs >= index)
            feasible = fits.any(axis=1)
            if not feasible.any():
                continue
            distance = np.maximum(np.maximum(observed_lo - index, index - observed_hi), 0)
            order = np.lexsort((rng.random(maps), np.where(feasible, distance, np.inf)))
            order = order[: min(int(feasible.sum()), 1 + restart)]
            chosen = int(order[rng.integers(len(order))])
            places = set(np.flatnonzero(fits[chosen]).tolist())
            image = next((i for i, unused in enumerate(free) if unused & places), None)
            if image is None:
                if images + len(free) >= batch:
                    break
                free.append(set(range(len(places_of))))
                image = len(free) - 1
            usable = sorted(free[image] & places)
            place = usable[int(rng.integers(len(usable)))]
            free[image].discard(place)
            low = index - _MARGIN if index > pre.min_int else -np.inf
            high = index + _MARGIN if index < pre.max_int else np.inf
            targets.append((first + images + image, position, chosen * area + places_of[place],
                            low, high, 1.0))
        images += len(free)
    return targets, images


def _source(qmodel, position, item, rng):
    """An element whose non-zero output makes weight input ``item`` of the layer at
    ``position`` non-zero: ``(layer position, flat element)`` of a layer without a table, or
    ``None`` when the input is a pixel or a table value."""
    layer = qmodel.layers[position]
    shape = tuple(layer.in_shape)
    if layer.kind == "dense":
        coords = np.unravel_index(item, shape)
    elif layer.kind == "subsample":
        coords = (item, int(rng.integers(shape[1])), int(rng.integers(shape[2])))
    else:
        channel, ky, kx = np.unravel_index(item, layer.weight.shape[1:])
        pad = layer.padding
        rows = [oy + ky - pad for oy in range(layer.out_shape[1]) if 0 <= oy + ky - pad < shape[1]]
        cols = [ox + kx - pad for ox in range(layer.out_shape[2]) if 0 <= ox + kx - pad < shape[2]]
        coords = (channel, rows[rng.integers(len(rows))], cols[rng.integers(len(cols))])
    flat = int(np.ravel_multi_index(tuple(int(c) for c in coords), shape))
    for previous in range(position - 1, -1, -1):
        producer = qmodel.layers[previous]
        coords = np.unravel_index(flat, tuple(producer.out_shape))
        if producer.kind != "maxpool":
            if producer.activation == "tanh":
                return None
            return previous, flat
        channel, y, x = (int(c) for c in coords)
        dy, dx = (int(v) for v in rng.integers(2, size=2))
        flat = int(np.ravel_multi_index((channel, 2 * y + dy, 2 * x + dx),
                                        tuple(producer.in_shape)))
    return None


def _input_targets(qmodel, pool, rng, batch, first):
    """Targets making missed weight inputs non-zero, one image each (see
    :func:`_table_targets`); the target is an output of at least 1 of the producing layer."""
    targets = []
    for kind, position in pool.segments:
        if kind != "inputs":
            continue
        for item in pool.missed("inputs", position):
            if len(targets) >= batch:
                return targets, len(targets)
            source = _source(qmodel, position, int(item), rng)
            if source is not None:
                targets.append((first + len(targets), *source, 1 - _MARGIN, np.inf, 1.0))
    return targets, len(targets)


def _dense_states(qmodel, images, chunk):
    """Per dense layer position, over ``images``: which units have a positive accumulator
    (``on``, bool ``(N, units)``; ReLU layers only, else None), which units are *active*
    (``active``: the output, or the table index, strictly between the values the ReLU and
    saturation clamp to, see :func:`_clamps`) and the input values (``x``, int64
    ``(N, inputs)``)."""
    dense = {position: layer for position, layer in enumerate(qmodel.layers)
             if layer.kind == "dense"}
    parts = {position: {"on": [], "active": [], "x": []} for position in dense}
    for steps in _walk(qmodel, images, chunk):
        for position, layer in dense.items():
            _, x, _, on = steps[position]
            x = x.reshape(len(x), -1)
            out = kernels.run_layer(index_layer(layer) if layer.activation == "tanh" else layer,
                                    x)
            low, high = _clamps(layer)
            parts[position]["on"].append(None if on is None else on.reshape(len(x), -1))
            parts[position]["active"].append((out > low) & (out < high))
            parts[position]["x"].append(x.astype(np.int64))
    states = {}
    for position, layer in dense.items():
        units, inputs = layer.weight.shape
        on, active, x = (parts[position][name] for name in ("on", "active", "x"))
        states[position] = {
            "on": None if layer.activation != "relu" else (
                np.concatenate(on) if on else np.zeros((0, units), dtype=bool)),
            "active": np.concatenate(active) if active else np.zeros((0, units), dtype=bool),
            "x": np.concatenate(x) if x else np.zeros((0, inputs), dtype=np.int64),
        }
    return states


def _clamps(layer):
    """The least and greatest output (table index with a table) of a dense layer: where the
    ReLU and the saturation (or wrapping) of its requantization clamp it."""
    fmt = layer.requant_format()
    least = max(fmt.min_int, 0) if layer.activation == "relu" else fmt.min_int
    return least, fmt.max_int


def _active_range(layer):
    """The relaxed pre-activation range (``requant_format`` units, see
    :class:`_Relaxation`) that keeps a dense unit active, with a margin of half a step."""
    least, greatest = _clamps(layer)
    return least + 1.0, greatest - 1.0


def _live_targets(qmodel, pool, rng, batch, first, width, states):
    """Targets making missed live words of dense ReLU layers live, the number of images they
    use (at most ``batch``, numbered from ``first``) and per image a start: an index into the
    images of ``states`` (see :func:`_dense_states`), or ``None``. Layers whose flips the pool
    counts are left to the flip search, which makes their words live on the way.

    Each image gets the unit with the most missed words (output at least 1), up to ``width``
    of its missed inputs (non-zero, see :func:`_source`) and the ``width`` further units whose
    missed words those inputs cover most; a unit's target weighs as much as the words it would
    cover, so the search keeps it positive first. The start is a known image in which the most
    of these units are positive and then the most of these inputs non-zero.
    """
    targets, images, starts = [], 0, []
    for kind, position in pool.segments:
        layer = qmodel.layers[position]
        if kind != "live" or layer.kind != "dense" or ("flips", position) in pool.segments:
            continue
        known_units, known_inputs = states[position]["on"], states[position]["x"] != 0
        units, inputs = layer.weight.shape
        open_words = np.zeros(units * inputs, dtype=bool)
        open_words[pool.missed("live", position)] = True
        open_words = open_words.reshape(units, inputs)
        sources = {}
        while open_words.any() and images < batch:
            counts = open_words.sum(axis=1)
            primary = int(rng.choice(np.flatnonzero(counts == counts.max())))
            chosen = rng.permutation(np.flatnonzero(open_words[primary]))[:width]
            overlap = open_words[:, chosen].sum(axis=1)
            overlap[primary] = 0
            extra = [unit for unit in np.argsort(-overlap, kind="stable")[:width].tolist()
                     if overlap[unit] > 0]
            group = [primary, *extra]
            image = first + images
            for unit in group:
                covered = int(open_words[unit, chosen].sum())
                open_words[unit, chosen] = False
                targets.append((image, position, unit, 1 - _MARGIN, np.inf, float(covered)))
            for item in chosen.tolist():
                if item not in sources:
                    sources[item] = _source(qmodel, position, item, rng)
                if sources[item] is not None:
                    targets.append((image, *sources[item], 1 - _MARGIN, np.inf, 1.0))
            start = None
            if len(known_units):
                score = (known_units[:, group].sum(axis=1) * (inputs + 1)
                         + known_inputs[:, chosen].sum(axis=1))
                if score.max() >= inputs + 1:
                    start = int(rng.choice(np.flatnonzero(score == score.max())))
            starts.append(start)
            images += 1
    return targets, images, starts


class _FlipReward:
    """The flips of dense layers an image may newly make visible, as a function of the
    relaxation (:meth:`_Relaxation.run`).

    Flip ``(m, k, b)`` changes the accumulator by ``2**b * x[k]`` (a two's complement bit
    weighs ``2**b``, the sign bit too); while unit ``m`` is active (its output strictly between
    the values the ReLU and saturation clamp to, see :func:`_clamps`) it shows when the change
    crosses a rounding step, which for an accumulator uniformly placed between two steps has
    the chance ``min(1, 2**b * |x[k]| / 2**requant_shift)``. The reward of an image is the
    sum of these chances over the missed flips of its active units: hard (a unit is active or
    not, as the integer model decides) to choose states, soft (a sigmoid of the distance to the
    clamps, ``softness`` output steps wide) for the gradient.
    """

    def __init__(self, qmodel, pool, softness=4.0):
        self.parts, self.softness = [], softness
        for kind, position in pool.segments:
            if kind != "flips":
                continue
            layer = qmodel.layers[position]
            units, inputs = layer.weight.shape
            bits = layer.weight_format.width
            flags = np.zeros(units * inputs * bits, dtype=bool)
            flags[pool.missed("flips", position)] = True
            if not flags.any():
                continue
            missed = torch.from_numpy(flags.reshape(units, inputs, bits).transpose(2, 0, 1)
                                      .astype(np.float32))
            scale = torch.from_numpy(
                2.0 ** (np.arange(bits) - max(layer.requant_shift, 0))).float()
            self.parts.append((position, missed, scale, *_clamps(layer)))
        self.depth = max((part[0] for part in self.parts), default=-1)

    def chances(self, x, scale):
        """``(N, bits, inputs)``: the chance that flipping each bit shows, per input value."""
        return (x.abs()[:, None, :] * scale[None, :, None]).clamp(max=1.0)

    def __call__(self, pixels, found, outputs):
        """Soft and hard rewards, ``(N,)`` each."""
        soft = hard = torch.zeros(len(pixels))
        for position, missed, scale, least, greatest in self.parts:
            x = (outputs[position - 1] if position else pixels).flatten(1)
            per_unit = torch.einsum("nbk,bmk->nm", self.chances(x, scale), missed)
            pre = found[position]
            rounded = torch.floor(pre.detach() + 0.5)
            on = ((rounded > least) & (rounded < greatest)).float()
            near = (torch.sigmoid((pre - least - 0.5) / self.softness)
                    * torch.sigmoid((greatest - 0.5 - pre) / self.softness))
            soft = soft + (near * per_unit).sum(axis=1)
            hard = hard + (on * per_unit.detach()).sum(axis=1)
        return soft, hard

    def known(self, states):
        """The hard reward of the images of ``states`` (see :func:`_dense_states`): in all,
        ``(N,)``, and per layer position and unit, ``{position: (N, units)}``."""
        total, units = 0.0, {}
        for position, missed, scale, least, greatest in self.parts:
            x = torch.from_numpy(states[position]["x"].astype(np.float32))
            per_unit = torch.einsum("nbk,bmk->nm", self.chances(x, scale), missed)
            active = torch.from_numpy(states[position]["active"].astype(np.float32))
            units[position] = np.asarray(active * per_unit, dtype=np.float64)
            total = total + units[position].sum(axis=1)
        return np.asarray(total, dtype=np.float64), units


def _optimise_flips(relax, reward, starts, focus, steps, lr, bar):
    """Projected Adam on the pixels that raises each image's soft flip reward
    (:class:`_FlipReward`) and keeps its *focus* unit active: ``focus`` holds per image None
    or ``(layer position, unit, weight)``, whose relaxed pre-activation is to lie within
    :func:`_active_range` (the squared miss, times ``weight``). Returns the rounded images:
    each image's state of greatest hard reward (with its focus unit active, once it was),
    then its last state."""
    count = len(starts)
    pixels = torch.tensor(starts, dtype=torch.float32).reshape(count, 1, 28, 28)
    pixels.requires_grad_(True)
    optimiser = torch.optim.Adam([pixels], lr=lr)
    best = torch.full((count,), -1.0)
    kept = torch.zeros(count, 1, 28, 28)
    groups = []
    for position in sorted({aim[0] for aim in focus if aim is not None}):
        images = [image for image, aim in enumerate(focus) if aim and aim[0] == position]
        groups.append((position, torch.tensor(images), torch.tensor([focus[i][1] for i in images]),
                       torch.tensor([float(focus[i][2]) for i in images]),
                       _active_range(relax.layers[position]["layer"])))
    for _ in range(steps):
        bar.update(1)
        rounded = pixels + (torch.floor(pixels + 0.5) - pixels).detach()
        found, outputs = relax.run(rounded, max([reward.depth, *(g[0] for g in groups)]))
        soft, hard = reward(rounded, found, outputs)
        loss = -soft.sum()
        for position, images, units, weight, (low, high) in groups:
            pre = found[position][images, units]
            loss = loss + (weight * (torch.relu(low - pre) ** 2
                                     + torch.relu(pre - high) ** 2)).sum()
            # a state only counts once its focus unit is active
            active = (low - 0.5 < pre.detach()) & (pre.detach() < high + 0.5)
            hard[images] = torch.where(active, hard[images], -0.5)
        with torch.no_grad():
            better = hard > best
            kept[better] = torch.floor(pixels[better] + 0.5)
            best = torch.where(better, hard, best)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            pixels.clamp_(0, 255)
    with torch.no_grad():
        final = torch.cat([kept, torch.floor(pixels + 0.5)]).clamp(0, 255)
    return final.reshape(2 * count, 28, 28).numpy().astype(np.uint8)


def _flip_plan(reward, states, known, rng, count):
    """Starts and focus units (see :func:`_optimise_flips`) for ``count`` images of the flip
    search, from the ``known`` images and their ``states`` (:func:`_dense_states`).

    Half the images each focus on one of the units with the most missed flips (the rarely
    active ones, whose flips the reward alone rarely reaches), weighted by those flips and
    started from a known image in which the unit is active (at random among the four best by
    the unit's own reward) or else from noise; the others start from known images drawn by
    their reward (:meth:`_FlipReward.known`) without focus.
    """
    score, per_unit = reward.known(states) if len(known) else (np.zeros(0), {})
    candidates = []
    for position, missed, *_ in reward.parts:
        open_flips = missed.sum(axis=(0, 2)).numpy()
        candidates += [(float(open_flips[unit]), float(rng.random()), position, unit)
                       for unit in np.flatnonzero(open_flips)]
    candidates.sort(reverse=True)
    starts, focus = [], []
    for flips, _, position, unit in candidates[: int(count * _FOCUS)]:
        active = np.flatnonzero(states[position]["active"][:, unit]) if len(known) else []
        if len(active):
            own = per_unit[position][active, unit]
            best = active[np.argsort(-own, kind="stable")[:4]]
            starts.append(known[best[rng.integers(len(best))]].astype(np.float64))
        else:
            starts.append(rng.integers(0, 256, (28, 28)).astype(np.float64))
        focus.append((position, unit, flips))
    rest = count - len(starts)
    if len(known) and score.sum() > 0:
        chance = score / score.sum()
        drawn = rng.choice(len(known), size=min(rest, int((chance > 0).sum())), replace=False,
                           p=chance)
        starts += [known[i].astype(np.float64) for i in drawn]
        focus += [None] * len(drawn)
    while len(starts) < count:
        starts.append(rng.integers(0, 256, (28, 28)).astype(np.float64))
        focus.append(None)
    return np.stack(starts), focus


def _optimise(relax, starts, targets, steps, lr, bar):
    """Projected Adam on the pixels so that every target's relaxed value is on target (the
    squared misses, weighted per target); returns the rounded images: each image's first state
    meeting the greatest weight of its targets, then each image's last state."""
    count = len(starts)
    pixels = torch.tensor(starts, dtype=torch.float32).reshape(count, 1, 28, 28)
    pixels.requires_grad_(True)
    optimiser = torch.optim.Adam([pixels], lr=lr)
    image_of = torch.tensor([t[0] for t in targets])
    weight = torch.tensor([t[5] for t in targets], dtype=torch.float32)
    element = torch.tensor([t[2] for t in targets])
    low = torch.tensor([t[3] for t in targets], dtype=torch.float32)
    high = torch.tensor([t[4] for t in targets], dtype=torch.float32)
    layer_of = np.array([t[1] for t in targets])
    groups = [(position, torch.from_numpy(np.flatnonzero(layer_of == position)))
              for position in np.unique(layer_of)]
    depth = int(layer_of.max())
    done = torch.zeros(count, dtype=torch.bool)
    best = torch.full((count,), -1.0)
    kept = torch.zeros(count, 1, 28, 28)
    used = 0
    for _ in range(steps):
        used += 1
        bar.update(1)
        rounded = pixels + (torch.floor(pixels + 0.5) - pixels).detach()
        found = relax.pre_activations(rounded, depth)
        relaxed = torch.zeros(len(targets))
        for position, select in groups:
            flat = found[position].reshape(count, -1)
            relaxed = relaxed.index_put((select,), flat[image_of[select], element[select]])
        error = torch.relu(low - relaxed) + torch.relu(relaxed - high)
        with torch.no_grad():
            met = error == 0
            score = torch.zeros(count).index_add(0, image_of, weight * met.float())
            better = score > best
            kept[better] = torch.floor(pixels[better] + 0.5)
            best = torch.where(better, score, best)
            done |= torch.zeros(count).index_add(0, image_of, (~met).float()) == 0
        if bool(done.all()):
            break
        optimiser.zero_grad()
        (weight * error**2).sum().backward()
        optimiser.step()
        with torch.no_grad():
            pixels.clamp_(0, 255)
    bar.update(steps - used)
    with torch.no_grad():
        final = torch.cat([kept, torch.floor(pixels + 0.5)]).clamp(0, 255)
    return final.reshape(2 * count, 28, 28).numpy().astype(np.uint8)


def directed_vectors(qmodel, images=None, seed=0, max_vectors=768, rounds=8, steps=150,
                     batch=256, copies=4, width=8, lr=8.0, chunk=1000, progress=False,
                     flips=True, flip_rounds=20, flip_batch=64):
    """Synthetic vectors that, with ``images``, hit every reachable table entry, exercise every
    weight word, make live every ReLU weight word and make visible every weight-bit flip of a
    dense layer they can.

    Candidates are structured images (blank, saturated, checkerboards, stripes, noise of
    several densities, rescaled and inverted digits from ``images``) and images found by a
    coverage-directed search. For each reachable table entry still missed (tanh layers in
    order), an output element whose interval contains it is chosen; for each weight input
    still zero, an output of the layer producing it (through max-pooling) is to become
    non-zero; for the words of dense ReLU layers not yet live (when their flips are not
    searched), units are to become positive together with inputs of theirs (see
    :func:`_live_targets`; the words of conv layers only count when a candidate makes them
    live). Pixels are optimised for many targets at once, several per image in disjoint
    receptive fields, through a differentiable relaxation of the integer model, starting from
    noise, an ordinary vector or, for live targets, the known image closest to them. Rounds
    repeat on what is still missed, with ``copies`` seeded restarts of each target while the
    batch has room.

    With ``flips``, the single-bit flips of dense layers' weights (:func:`coverage_report`)
    that the interval analysis does not prove invisible (:func:`flip_proofs`) are items too,
    and ``flip_rounds`` more rounds of ``flip_batch`` images each raise the expected number of
    flips still missed that an image makes visible (:class:`_FlipReward`), half of them while
    keeping active a unit with many missed flips (:func:`_flip_plan`). The rounded images are
    always run by the integer simulator, which alone counts hits. A greedy set cover finally
    picks a small subset.

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8, shape (N, 28, 28), optional
        The ordinary vectors; what they hit needs no directed vector.
    seed : int
        Seeds every random choice. The search runs torch on one thread, so the same seed
        gives the same bytes on the same machine and software.
    max_vectors : int
        At most this many vectors are returned.
    rounds, steps, batch, copies : int
        Search rounds for targets, optimiser steps per round (of either search), images per
        round, restarts per target.
    width : int
        Inputs (and further units) per image for live targets, at least 2.
    lr : float
        Adam step size on pixels in 0..255.
    chunk : int
        Images per batch of the simulator.
    progress : bool
        Show a progress bar (optimiser steps).
    flips : bool
        Also search for vectors that make weight-bit flips of dense layers visible.
    flip_rounds, flip_batch : int
        Rounds of the flip search and images per round.

    Returns
    -------
    numpy.ndarray of uint8, shape (M, 28, 28)
        ``M <= max_vectors`` vectors in set-cover order (most new items first). Reachable
        entries they still miss show as ``missed`` in :func:`coverage_report` of the ordinary
        and directed vectors together, words never live as ``live`` below ``words -
        never_live``, flips never visible as ``visible_flips`` below ``flips -
        invisible_flips``; they are not claimed impossible.
    """
    if images is not None:
        images = _check_images(qmodel, images)
    for name, value in (("max_vectors", max_vectors), ("rounds", rounds), ("steps", steps),
                        ("batch", batch), ("copies", copies), ("width", width),
                        ("chunk", chunk), ("flip_rounds", flip_rounds),
                        ("flip_batch", flip_batch)):
        _check_count(name, value,
                     least={"max_vectors": 0, "width": 2, "flip_rounds": 0}.get(name, 1))
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise HwlenetError(f"lr must be a positive number, not {lr!r}")
    if not isinstance(flips, bool):
        raise HwlenetError(f"flips must be True or False, not {flips!r}")
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    if max_vectors == 0:
        return empty
    rng = np.random.default_rng(seed)
    analysis, tables, idle, never, invisible = _reachability(qmodel)
    pool = _Pool(qmodel, tables, idle, never, images, chunk, invisible if flips else None)
    pool.offer(_structured_images(images, rng))
    relax = _Relaxation(qmodel)
    slots = {position: _slots(qmodel, position) if len(layer.out_shape) == 3 else None
             for position, layer in enumerate(qmodel.layers) if layer.activation == "tanh"}
    seeds = None if images is None or not len(images) else images[rng.permutation(len(images))[:64]]
    flip_rounds = flip_rounds if pool.deltas else 0

    def known():
        return np.array([*([] if images is None else images), *pool.images],
                        dtype=np.uint8).reshape(-1, 28, 28)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tqdm(total=(rounds + flip_rounds) * steps, desc="directed vectors", unit="step",
                  disable=not progress) as bar:
            for restart in range(rounds):
                bar.set_postfix(missed=pool.open())
                seen = known()
                states = _dense_states(qmodel, seen, chunk)
                targets, count, warm = [], 0, {}
                for copy in range(copies):
                    more, used = _table_targets(qmodel, pool, analysis, slots, rng,
                                                batch - count, restart + copy, count)
                    extra, taken = _input_targets(qmodel, pool, rng, batch - count - used,
                                                  count + used)
                    used += taken
                    lively, held, begin = _live_targets(qmodel, pool, rng, batch - count - used,
                                                        count + used, width, states)
                    warm.update((count + used + image, start)
                                for image, start in enumerate(begin) if start is not None)
                    if not more + extra + lively:
                        break
                    targets, count = targets + more + extra + lively, count + used + held
                if not targets:
                    bar.update((rounds - restart) * steps)
                    break
                starts = rng.integers(0, 256, (count, 28, 28)).astype(np.float64)
                blend = rng.random(count)[:, None, None]
                starts = starts * blend + 128 * (1 - blend)
                if seeds is not None:
                    reuse = rng.random(count) < 0.3
                    starts[reuse] = seeds[rng.integers(len(seeds), size=int(reuse.sum()))]
                for image, start in warm.items():
                    starts[image] = seen[start]
                pool.offer(_optimise(relax, starts, targets, steps, lr, bar))
            for restart in range(flip_rounds):
                bar.set_postfix(missed=pool.open())
                reward = _FlipReward(qmodel, pool)
                if not reward.parts:
                    bar.update((flip_rounds - restart) * steps)
                    break
                seen = known()
                starts, focus = _flip_plan(reward, _dense_states(qmodel, seen, chunk), seen,
                                           rng, flip_batch)
                pool.offer(_optimise_flips(relax, reward, starts, focus, steps, lr, bar))
            bar.set_postfix(missed=pool.open())
    finally:
        torch.set_num_threads(threads)
    chosen = pool.cover(max_vectors)
    if not chosen:
        return empty
    return np.stack([pool.images[i] for i in chosen])
