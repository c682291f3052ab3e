import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwlenet import HwlenetError
from hwlenet.quant.artifact import MAX_ACCUMULATOR_WIDTH, MAX_SHIFT, QLayer
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from hwlenet.sim import kernels
from hwlenet.sim.reference import reference_layer
from helpers import as_model, random_layer

LAYER_FUNCTIONS = {"conv": kernels.conv_layer, "dense": kernels.dense_layer,
                   "subsample": kernels.subsample_layer, "maxpool": kernels.maxpool_layer}


def check_against_reference(layer, x):
    got = LAYER_FUNCTIONS[layer.kind](layer, x)
    expected = np.stack([reference_layer(layer, image) for image in x])
    np.testing.assert_array_equal(got, expected.reshape(got.shape))


@pytest.mark.parametrize("kind", sorted(LAYER_FUNCTIONS))
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_numba_matches_reference(kind, seed):
    layer, x = random_layer(seed, kind)
    if layer.has_weights:
        as_model(layer).validate()
    check_against_reference(layer, x)


def test_random_layers_span_the_accepted_range():
    """The property test above draws from every corner the artifact accepts."""
    layers = [random_layer(seed, kind)[0] for seed in range(300)
              for kind in ("conv", "dense", "subsample")]
    shifts = {layer.requant_shift for layer in layers}
    assert {MAX_SHIFT, MAX_SHIFT - 1, 63, 62, 0, 1, -1} <= shifts
    assert any(layer.requant_shift == layer.accumulator_width - MAX_ACCUMULATOR_WIDTH < -20
               for layer in layers)
    widths = {layer.accumulator_width for layer in layers}
    assert min(widths) <= 32 < max(widths) == MAX_ACCUMULATOR_WIDTH
    assert max(layer.bias_shift for layer in layers if layer.bias.any()) >= 55
    assert max(layer.bias_shift for layer in layers) == MAX_SHIFT
    formats = [fmt for layer in layers for fmt in (layer.input_format, layer.output_format)]
    assert {2, 63} <= {fmt.width for fmt in formats}
    assert {(r, o, s) for r, o, s in itertools.product(ROUNDING_MODES, OVERFLOW_MODES,
                                                       (True, False))} == {
        (fmt.rounding, fmt.overflow, fmt.signed) for fmt in formats}


def extreme_dense(shift, out_fmt, in_width=62):
    """A dense layer on ``s{in_width}.0`` inputs whose accumulator reaches ``+-(2**in_width - 3)``
    (``+-x`` plus a bias of nearly ``2**(in_width - 1)``), so it needs ``in_width + 1`` bits;
    requantized with ``shift``."""
    half = 1 << (in_width - 2)
    return QLayer("d", "dense", (2,), (4,), FixedFormat(in_width, 0),
                  FixedFormat(out_fmt.width, -shift, out_fmt.signed, out_fmt.rounding,
                              out_fmt.overflow),
                  weight=np.array([[1, 0], [-1, 0], [0, 1], [0, -1]]),
                  weight_format=FixedFormat(2, 0),
                  bias=np.array([half - 1, 1 - half, 0, -1]),
                  bias_format=FixedFormat(in_width, -1), accumulator_width=in_width + 1)


def edge_inputs(in_width):
    low, high = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    column = (low, low + 1, low // 2, -3, -2, -1, 0, 1, 2, 3, high // 2, high - 1, high)
    return np.array(list(itertools.product(column, (low, -1, 0, 1, high))), dtype=np.int64)


def edge_shifts(in_width):
    """Every interesting shift a layer with an ``in_width + 1``-bit accumulator accepts."""
    widest_left = in_width + 1 - MAX_ACCUMULATOR_WIDTH
    return sorted({widest_left, widest_left + 1, -1, 0, 1, 2, 30, 31, 32, 33, 60, 61, 62, 63,
                   MAX_SHIFT} - set(range(-64, widest_left)))


@pytest.mark.parametrize("in_width", [62, 40, 20])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("width,signed", [(2, True), (2, False), (32, True), (62, False),
                                          (63, True), (63, False)])
def test_widest_accumulators_at_every_edge_shift(in_width, rounding, overflow, width, signed):
    for shift in edge_shifts(in_width):
        layer = extreme_dense(shift, FixedFormat(width, 0, signed, rounding, overflow), in_width)
        as_model(layer).validate()
        check_against_reference(layer, edge_inputs(in_width))


@pytest.mark.parametrize("kind", ["conv", "dense", "subsample"])
@pytest.mark.parametrize("shift", [MAX_SHIFT - 1, MAX_SHIFT])
def test_largest_right_shifts_in_every_kind(kind, shift):
    for seed in range(12):
        layer, x = random_layer(seed, kind)
        fmt = layer.requant_format()
        moved = FixedFormat(fmt.width, layer.acc_frac - shift, fmt.signed, fmt.rounding,
                            fmt.overflow)
        if layer.activation == "tanh":
            layer.pre_format = moved
        else:
            layer.output_format = moved
        as_model(layer).validate()
        check_against_reference(layer, x)


def test_artifact_refuses_shifts_beyond_the_bound():
    fmt = FixedFormat(8, 0)
    layer = extreme_dense(MAX_SHIFT + 1, fmt)
    with pytest.raises(HwlenetError, match=f"right shift of {MAX_SHIFT + 1} bits; at most "
                                           f"{MAX_SHIFT}"):
        as_model(layer).validate()
    layer = extreme_dense(-1, fmt)
    with pytest.raises(HwlenetError, match="shifting the accumulator left by 1 bits exceeds 63"):
        as_model(layer).validate()
    layer = extreme_dense(0, fmt)
    layer.bias, layer.bias_format = np.zeros(4, np.int64), FixedFormat(8, -MAX_SHIFT - 1)
    with pytest.raises(HwlenetError, match=f"shift of {MAX_SHIFT + 1} bits; at most"):
        as_model(layer).validate()
    with pytest.raises(HwlenetError, match=f"bias shift {MAX_SHIFT + 1} is outside"):
        layer.aligned_bias()
    layer.bias, layer.bias_format = np.array([0, 0, 0, 1]), FixedFormat(8, -MAX_SHIFT)
    with pytest.raises(HwlenetError, match="do not fit 64 bits"):
        layer.aligned_bias()
    layer.bias_format = FixedFormat(8, -62)
    with pytest.raises(HwlenetError, match="can overflow; these weights need 64"):
        as_model(layer).validate()


def test_zero_biases_at_the_largest_bias_shift():
    layer = extreme_dense(3, FixedFormat(16, 0))
    layer.bias, layer.bias_format = np.zeros(4, np.int64), FixedFormat(8, -MAX_SHIFT)
    as_model(layer).validate()
    np.testing.assert_array_equal(layer.aligned_bias(), np.zeros(4, np.int64))
    check_against_reference(layer, edge_inputs(62))


def test_wrong_input_shape():
    layer, x = random_layer(3, "conv")
    with pytest.raises(HwlenetError, match="input shape"):
        kernels.conv_layer(layer, x[:, :, 1:, :])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_finish_array_is_how_a_dense_layer_finishes(seed):
    """``finish_array`` on a dense layer's accumulators gives the layer's outputs."""
    layer, x = random_layer(seed, "dense")
    acc = np.stack([[sum(int(w) * int(v) for w, v in zip(row, image.ravel()))
                     for row in layer.weight] for image in x]) + np.asarray(
        [int(b) for b in layer.aligned_bias()], dtype=object)
    np.testing.assert_array_equal(kernels.finish_array(layer, acc.astype(np.int64)),
                                  kernels.dense_layer(layer, x).astype(np.int64))


def test_finish_array_refuses_layers_without_accumulators():
    layer, _ = random_layer(3, "maxpool")
    with pytest.raises(HwlenetError, match="no accumulators"):
        kernels.finish_array(layer, np.zeros(3, np.int64))
