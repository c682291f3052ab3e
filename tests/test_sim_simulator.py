import copy

import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.quant.artifact import MAX_FRAC
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import compare_with_float, reference_forward, simulate

CALIBRATION = np.random.default_rng(11).integers(0, 256, (64, 28, 28), dtype=np.uint8)
VARIANTS = {
    "classic-8": ("lenet5-classic", 8, "half_up", "saturate"),
    "classic-fc-8": ("lenet5-classic-fc", 8, "half_up", "saturate"),
    "relu-8": ("lenet5-relu", 8, "half_up", "saturate"),
    "classic-5-even-wrap": ("lenet5-classic", 5, "half_even", "wrap"),
    "relu-4-floor-wrap": ("lenet5-relu", 4, "floor", "wrap"),
    "relu-12-even": ("lenet5-relu", 12, "half_even", "saturate"),
}


def quantized(variant, config=None):
    """A shipped model quantized on random images (no MNIST needed)."""
    name, bits, rounding, overflow = VARIANTS[variant]
    return quantize_model(resolve_model(name)[0], CALIBRATION, bits, bits, rounding, overflow,
                          config=config)


def random_images(seed, count):
    """Seeded random pixels, plus an all-black and an all-white image."""
    images = np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    return np.concatenate([images, np.zeros((1, 28, 28), np.uint8),
                           np.full((1, 28, 28), 255, np.uint8)])


def lowest_best(row, rule="argmax"):
    """The class of one image's outputs under ``rule``, lowest index on ties."""
    best = max(row) if rule == "argmax" else min(row)
    return min(index for index, value in enumerate(row) if value == best)


def check_against_reference(qmodel, images):
    """Every layer of the compiled simulator equals the Python-integer reference."""
    result = simulate(qmodel, images, trace=True)
    for index, image in enumerate(images):
        expected = reference_forward(qmodel, image)
        for layer, want in zip(qmodel.layers, expected):
            np.testing.assert_array_equal(result.trace[layer.name][index], want,
                                          err_msg=f"layer {layer.name} image {index}")
        np.testing.assert_array_equal(result.logits[index], expected[-1])
        assert result.classes[index] == lowest_best(expected[-1].tolist(), qmodel.output_rule)
    return result


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_whole_network_matches_reference(variant):
    qmodel = quantized(variant)
    check_against_reference(qmodel, random_images(len(variant), 4))


@pytest.mark.parametrize("layer_name,key,shift", [
    ("out", "output", 64), ("out", "output", 63), ("out", "output", 62),
    ("out", "output", "widest left"), ("c1", "pre", 64), ("c3", "pre", 63),
])
def test_extreme_configured_shifts_match_reference(layer_name, key, shift):
    """A config may push a layer's requantization shift to the ends of the accepted range (the
    fully connected output: the RBF output takes no config)."""
    variant = "classic-fc-8" if layer_name == "out" else "classic-8"
    qmodel = quantized(variant)
    layer = qmodel.layer(layer_name)
    if shift == "widest left":
        shift = layer.accumulator_width - 63
    config = {"layers": {layer_name: {key: {"frac": layer.acc_frac - shift}}}}
    extreme = quantized(variant, config)
    assert extreme.layer(layer_name).requant_shift == shift
    check_against_reference(extreme, random_images(abs(shift), 3))


@pytest.mark.parametrize("layer_name,key,beyond", [
    ("out", "output", 65), ("c1", "pre", 1000), ("out", "output", "one past widest left"),
    ("out", "bias", 65),
])
def test_configured_shifts_beyond_the_range_are_refused(layer_name, key, beyond):
    variant = "classic-fc-8" if layer_name == "out" else "classic-8"
    qmodel = quantized(variant)
    layer = qmodel.layer(layer_name)
    if beyond == "one past widest left":
        frac, message = layer.acc_frac + 64 - layer.accumulator_width, "left by"
    elif key == "bias":
        frac, message = layer.acc_frac - beyond, f"bias shift {beyond} is outside 0..64"
    else:
        frac, message = layer.acc_frac - beyond, f"right shift of {beyond} bits; at most 64"
    if abs(frac) > MAX_FRAC:  # refused as a format before any shift is derived
        message = f"frac must be an integer from {-MAX_FRAC} to {MAX_FRAC}, not {frac}"
    with pytest.raises(HwlenetError, match=message):
        quantized(variant, {"layers": {layer_name: {key: {"frac": frac}}}})


@pytest.mark.parametrize("variant", ["classic-fc-8", "relu-8"])
@pytest.mark.parametrize("logits,expected", [
    ([3] * 10, 0),
    ([0, 5, 1, 5, 5, 0, 0, 0, 0, 5], 1),
    ([-4, -4, -4, -4, -4, -4, -4, -4, -3, -3], 8),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 9),
])
def test_tied_logits_give_the_lowest_index(variant, logits, expected):
    """The class is the lowest index among the largest logits (the artifact's tie rule)."""
    qmodel = copy.deepcopy(quantized(variant))
    out = qmodel.layers[-1]
    assert out.requant_shift >= out.bias_shift
    out.weight = np.zeros_like(out.weight)
    out.bias = np.array(logits, dtype=np.int64) << (out.requant_shift - out.bias_shift)
    qmodel.validate()
    result = simulate(qmodel, random_images(5, 6))
    np.testing.assert_array_equal(result.logits, np.tile(logits, (len(result.logits), 1)))
    np.testing.assert_array_equal(result.classes, np.full(len(result.classes), expected))


@pytest.mark.parametrize("variant", ["classic-8", "classic-5-even-wrap"])
@pytest.mark.parametrize("pair", [(2, 7), (6, 9), (0, 8)])
def test_tied_penalties_give_the_lowest_index(variant, pair):
    """RBF output: with F6 forced to t (c_a + c_b) / 2 (zero weights, biases chosen through the
    table), codes a and b tie for the smallest penalty and the class is the lower index."""
    qmodel = copy.deepcopy(quantized(variant))
    assert qmodel.output_rule == "argmin"
    f6, out = qmodel.layer("f6"), qmodel.layers[-1]
    pre = f6.pre_format
    values = {}  # table value -> the index nearest 0 that gives it
    for position, value in enumerate(f6.lut.tolist()):
        index = position + pre.min_int
        if value not in values or abs(index) < abs(values[value]):
            values[value] = index
    t = min(v for v in values if v > 0 and -v in values)
    target = (out.codes[pair[0]] + out.codes[pair[1]]) // 2 * t
    shift = f6.requant_shift - f6.bias_shift
    assert shift >= 0
    f6.weight = np.zeros_like(f6.weight)
    f6.bias = np.array([values[int(v)] for v in target], dtype=np.int64) << shift
    assert f6.bias_format.min_int <= f6.bias.min() and f6.bias.max() <= f6.bias_format.max_int
    qmodel.validate()
    result = simulate(qmodel, random_images(7, 3), trace=True)
    np.testing.assert_array_equal(result.trace["f6"], np.tile(target, (5, 1)))
    penalties = result.logits[0]
    assert penalties[pair[0]] == penalties[pair[1]] == penalties.min()
    assert np.count_nonzero(penalties == penalties.min()) == 2
    np.testing.assert_array_equal(result.classes, np.full(5, min(pair)))


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_eight_bits_within_two_tenths_of_float_on_full_test_set(qmodels, test_split, name):
    report = compare_with_float(qmodels[name], test_split.images, test_split.labels)
    assert report["images"] == 10000
    assert report["fixed_accuracy"] >= report["float_accuracy"] - 0.002
    assert report["agreement"] > 0.99
    assert [row["name"] for row in report["layers"]] == qmodels[name].layer_names
    assert all(row["sqnr_db"] > 25 for row in report["layers"])


@pytest.mark.parametrize("chunk", [5, 17, 64])
def test_chunking_does_not_change_results(chunk):
    qmodel = quantized("relu-8")
    images = random_images(3, 48)
    whole = simulate(qmodel, images, trace=True)
    pieces = simulate(qmodel, images, trace=True, chunk=chunk)
    for layer in qmodel.layers:
        np.testing.assert_array_equal(whole.trace[layer.name], pieces.trace[layer.name])
    np.testing.assert_array_equal(whole.classes, pieces.classes)


@pytest.mark.parametrize("images,message", [
    (np.zeros((2, 28, 27), np.uint8), "shape"),
    (np.zeros((2, 28, 28), np.float32), "uint8"),
])
def test_bad_images(images, message):
    with pytest.raises(HwlenetError, match=message):
        simulate(quantized("relu-8"), images)
