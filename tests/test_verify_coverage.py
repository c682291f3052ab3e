import dataclasses
import itertools
import json

import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.quant.artifact import QLayer, QuantizedModel, accumulator_bound
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import kernels, simulate
from hwlenet.verify import coverage
from hwlenet.verify.coverage import (coverage_report, directed_vectors, flip_proofs,
                                     index_layer, live_hits, reachable_tables, table_hits,
                                     weight_hits)
from helpers import as_model, random_layer

LAYER_FUNCTIONS = {"conv": kernels.conv_layer, "dense": kernels.dense_layer,
                   "subsample": kernels.subsample_layer, "maxpool": kernels.maxpool_layer}
U8 = FixedFormat(8, 0, signed=False)


def sparse_images(count, seed, density=0.3):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 28, 28)) * (rng.random((count, 28, 28)) < density)
    return pixels.astype(np.uint8)


@pytest.fixture(scope="module")
def small_models():
    """Both shipped models at 5 bits (128-entry tables), calibrated on seeded random images."""
    calibration = sparse_images(64, seed=0, density=0.2)
    return {name: quantize_model(resolve_model(name)[0], calibration, 5, 5)
            for name in ("lenet5-classic", "lenet5-relu")}


@pytest.fixture(scope="module")
def directed(small_models):
    """Ordinary vectors and the directed vectors added to them, per small model (a short
    search, above all for the ReLU model, whose weight-bit flips would keep a full one
    busy)."""
    base = sparse_images(20, seed=1)
    options = {"lenet5-classic": dict(flip_rounds=4),
               "lenet5-relu": dict(rounds=2, batch=32, steps=60, flip_rounds=3, flip_batch=16)}
    return {name: (base, directed_vectors(qmodel, base, seed=3, **options[name]))
            for name, qmodel in small_models.items()}


def picker_model():
    """One dense tanh layer: unit 0 is pixel (0, 0), units 1..9 are 0; the index saturates to
    a 6-bit table, so it is ``min(pixel, 31)``."""
    weight = np.zeros((10, 784), np.int64)
    weight[0, 0] = 1
    layer = QLayer("t", "dense", (1, 28, 28), (10,), U8, FixedFormat(8, 0), "tanh",
                   weight=weight, weight_format=FixedFormat(2, 0), bias=np.zeros(10, np.int64),
                   bias_format=FixedFormat(2, 0), accumulator_width=10,
                   pre_format=FixedFormat(6, 0), lut=np.arange(64, dtype=np.int64) - 32)
    return QuantizedModel("classic", U8, [layer])


def box_model():
    """One 3x3 conv tanh layer with padding 1 and unit weights: the index is the window sum."""
    layer = QLayer("b", "conv", (1, 28, 28), (1, 28, 28), U8, FixedFormat(8, 0), "tanh",
                   weight=np.ones((1, 1, 3, 3), np.int64), weight_format=FixedFormat(2, 0),
                   bias=np.zeros(1, np.int64), bias_format=FixedFormat(2, 0), padding=1,
                   accumulator_width=13, pre_format=FixedFormat(8, 0),
                   lut=np.zeros(256, np.int64))
    return QuantizedModel("classic", U8, [layer])


def gate_model():
    """One dense ReLU layer: unit 0 is ``pixel 0 - pixel 1``, unit 1 is always 1 and unit 2
    is ``-pixel 0 - 1``, never positive."""
    weight = np.zeros((3, 784), np.int64)
    weight[0, :2] = [1, -1]
    weight[2, 0] = -1
    layer = QLayer("g", "dense", (1, 28, 28), (3,), U8, U8, "relu", weight=weight,
                   weight_format=FixedFormat(2, 0), bias=np.array([0, 1, -1], np.int64),
                   bias_format=FixedFormat(2, 0), accumulator_width=11)
    return QuantizedModel("lenet5-relu", U8, [layer])


def test_a_weight_is_live_only_where_its_unit_is_on():
    qmodel = gate_model()
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 0, 1] = 5  # pixel 1 meets unit 0 while it is off: -5 ...
    images[1, 0, 0] = 10  # ... and while it is on: 10 - 5
    expected = np.zeros((3, 784), bool)
    expected[1, 1] = True
    np.testing.assert_array_equal(live_hits(qmodel, images[:1])["g"], expected)
    np.testing.assert_array_equal(weight_hits(qmodel, images[:1])["g"][:, 1], [1, 1, 1])
    expected[:2, :2] = True
    np.testing.assert_array_equal(live_hits(qmodel, images)["g"], expected)
    before, after = (coverage_report(qmodel, images[:count])["layers"][0]["weights"]
                     for count in (1, 2))
    assert (before["exercised"], before["live"], before["never_live"]) == (3, 1, 784)
    assert (after["exercised"], after["live"], after["never_live"]) == (6, 4, 784)
    assert after["live_fraction_of_possible"] == 4 / (3 * 784 - 784)
    # all 8 flips of the words of units 0 and 1 that meet pixels 0 and 1 show; of unit 2's,
    # the two that raise its accumulator above 0 (-1 -> 1 on pixel 0, 0 -> 1 on pixel 1)
    assert (after["flips"], after["visible_flips"]) == (3 * 784 * 2, 10)


def relu_layer(seed, kind):
    layer, x = random_layer(seed, kind)
    return dataclasses.replace(layer, activation="relu", lut=None), x


def exact_accumulators(layer, x):
    """Accumulators in Python integers, output by output: ``(N, *out_shape)``."""
    weight, bias = layer.weight.astype(object), layer.aligned_bias().astype(object)
    x = x.astype(object)
    if layer.kind == "dense":
        return x.reshape(len(x), -1) @ weight.T + bias
    pad, k = layer.padding, weight.shape[2]
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    acc = np.empty((len(x), *layer.out_shape), dtype=object)
    for oy in range(layer.out_shape[1]):
        for ox in range(layer.out_shape[2]):
            window = padded[:, :, oy : oy + k, ox : ox + k]
            acc[:, :, oy, ox] = np.einsum("ncij,mcij->nm", window, weight) + bias
    return acc


@pytest.mark.parametrize("kind", ["conv", "dense"])
@pytest.mark.parametrize("seed", range(12))
def test_live_words_of_random_layers(kind, seed):
    """Random formats up to 63-bit accumulators: the sign of the accumulator and the live
    words agree with a computation in Python integers."""
    layer, x = relu_layer(seed, kind)
    on = LAYER_FUNCTIONS[kind](coverage._sign_layer(layer), x) > 0
    acc = exact_accumulators(layer, x)
    np.testing.assert_array_equal(on, acc > 0)
    if kind == "dense":
        expected = ((acc > 0)[:, :, None] & (x.reshape(len(x), -1) != 0)[:, None, :])
    else:
        pad, k = layer.padding, layer.weight.shape[2]
        padded = np.pad(x != 0, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        expected = np.zeros((len(x), *layer.weight.shape), bool)
        for ky in range(k):
            for kx in range(k):
                meets = padded[:, :, ky : ky + acc.shape[2], kx : kx + acc.shape[3]]
                expected[..., ky, kx] = np.einsum("nmyx,ncyx->nmc", acc > 0, meets) > 0
    np.testing.assert_array_equal(coverage._live_rows(layer, x, on), expected)
    np.testing.assert_array_equal(coverage._live_any(layer, x, on), expected.any(axis=0))


#: Random dense layers whose flipped accumulators fit int64 (the others have no flip counts).
FLIP_SEEDS = [seed for seed in range(20)
              if coverage._flip_deltas(random_layer(seed, "dense")[0]) is not None][:12]


@pytest.mark.parametrize("seed", FLIP_SEEDS)
def test_visible_flips_are_what_a_flipped_weight_changes(seed):
    """Every single-bit flip of a random dense layer's weights, run by the simulator kernel:
    the outputs change for some input exactly where the flip is counted visible."""
    layer, x = random_layer(seed, "dense")
    deltas = coverage._flip_deltas(layer)
    before = kernels.dense_layer(dataclasses.replace(layer, accumulator_width=63), x)
    fmt = layer.weight_format
    units, inputs, width = deltas.shape
    expected = np.zeros(deltas.shape, bool)
    for k in range(inputs):
        # one layer with a row per unit and bit, that bit of weight (unit, k) flipped
        weight = np.repeat(layer.weight, width, axis=0)
        pattern = (weight[:, k] & ((1 << fmt.width) - 1)) ^ (1 << np.tile(np.arange(width), units))
        if fmt.signed:
            pattern = np.where(pattern >> (fmt.width - 1), pattern - (1 << fmt.width), pattern)
        weight[:, k] = pattern
        flipped = dataclasses.replace(layer, out_shape=(units * width,), weight=weight,
                                      bias=np.repeat(layer.bias, width), accumulator_width=63)
        after = kernels.dense_layer(flipped, x).reshape(len(x), units, width)
        expected[:, k] = (after != before[:, :, None]).any(axis=0)
    np.testing.assert_array_equal(coverage._visible_flips(layer, x, deltas), expected)


def tiny_dense(seed):
    """A dense layer of 3 units on 2 or 3 inputs of at most 4 bits (random formats, rounding,
    overflow and activation; tables of few values, so often flat), and every input it
    accepts."""
    rng = np.random.default_rng(seed)
    inputs = int(rng.integers(2, 4))
    in_fmt = FixedFormat(int(rng.integers(2, 5)), int(rng.integers(-1, 3)),
                         bool(rng.integers(2)))
    w_fmt = FixedFormat(int(rng.integers(2, 6)), int(rng.integers(0, 4)), True)
    acc_frac = w_fmt.frac + in_fmt.frac
    requant = FixedFormat(int(rng.integers(2, 6)), acc_frac - int(rng.integers(-1, 5)),
                          bool(rng.integers(2)), ROUNDING_MODES[rng.integers(3)],
                          OVERFLOW_MODES[rng.integers(2)])
    activation = ("none", "relu", "tanh")[rng.integers(3)]
    layer = QLayer("d", "dense", (inputs,), (3,), in_fmt, requant, activation,
                   weight=rng.integers(w_fmt.min_int, w_fmt.max_int, (3, inputs), endpoint=True),
                   weight_format=w_fmt, bias=rng.integers(-40, 41, 3),
                   bias_format=FixedFormat(8, acc_frac, True))
    if activation == "tanh":
        layer.pre_format, layer.output_format = requant, FixedFormat(4, 0)
        layer.lut = rng.integers(-2, 3, 1 << requant.width)
    layer.accumulator_width = accumulator_bound(layer).bit_length() + 2
    grid = itertools.product(range(in_fmt.min_int, in_fmt.max_int + 1), repeat=inputs)
    return layer, np.array(list(grid), dtype=np.int64)


def exhaustive_flips(seed):
    """A :func:`tiny_dense` layer, which of its flips some input shows, and its proof."""
    layer, grid = tiny_dense(seed)
    visible = coverage._visible_flips(layer, grid, coverage._flip_deltas(layer))
    return layer, visible, flip_proofs(as_model(layer))["d"]


@pytest.mark.parametrize("seed", range(40))
def test_flips_proven_invisible_are_invisible_for_every_input(seed):
    """Small dense layers of every activation, rounding and overflow, all their inputs: no flip
    proven invisible changes an output, and a visible flip has no reason."""
    _, visible, proof = exhaustive_flips(seed)
    assert not (proof.invisible & visible).any()
    for unit, item, bit in np.argwhere(visible)[:3]:
        assert proof.reason(unit, item, bit) is None


def test_flip_proofs_find_nearly_every_invisible_flip_of_saturating_layers():
    """A single layer's input box is exactly its domain: where the format saturates (a
    monotone finish) the proof finds nearly every flip no input shows (a wrapping format also
    hides some flips modulo its range, which the proof does not claim)."""
    proven = invisible = 0
    for seed in range(40):
        layer, visible, proof = exhaustive_flips(seed)
        if layer.requant_format().overflow == "saturate":
            proven += int(proof.invisible.sum())
            invisible += int((~visible).sum())
    assert invisible > 50 and proven >= 0.9 * invisible, (proven, invisible)


def test_flips_of_a_unit_never_on_are_proven_invisible():
    """In the gate model, unit 2 (``-pixel 0 - 1``) stays off unless a flip makes a weight
    positive: its other flips are proven invisible, and nothing else is."""
    qmodel = gate_model()
    proof = flip_proofs(qmodel)["g"]
    expected = np.zeros((3, 784, 2), bool)
    expected[2, 0, 0] = True  # -1 -> -2
    expected[2, 1:, 1] = True  # 0 -> -2
    np.testing.assert_array_equal(proof.invisible, expected)
    reason = proof.reason(2, 5, 1)
    assert "bit 1 of g weight [2, 5] (0 -> -2)" in reason
    assert "both accumulators lie in [-766, -1], where the output is always 0" in reason
    assert proof.reason(2, 5, 0) is None
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 0, 1] = 5
    images[1, 0, 0] = 10
    weights = coverage_report(qmodel, images)["layers"][0]["weights"]
    assert (weights["invisible_flips"], weights["visible_flips"]) == (784, 10)
    assert weights["visible_flip_fraction_of_possible"] == 10 / (3 * 784 * 2 - 784)


def test_lazy_cover_is_the_greedy_cover():
    """The lazy set cover picks what recomputing every gain would, ties to the first image."""
    pool = coverage._Pool(picker_model(), {"t": {"mask": np.ones(64, bool)}},
                          {"t": np.zeros(784, bool)}, {}, None, 1000)
    rng = np.random.default_rng(5)
    rows = rng.random((40, pool.universe.size)) < rng.random((40, 1)) * 0.05
    pool.images = list(range(40))
    pool.hits = [np.flatnonzero(row) for row in rows]
    pool.covered = rows.any(axis=0)
    remaining, expected = rows.any(axis=0), []
    while remaining.any():
        best = int((rows & remaining).sum(axis=1).argmax())
        expected.append(best)
        remaining &= ~rows[best]
    assert pool.cover(1000) == expected
    assert pool.cover(3) == expected[:3]


def test_hits_of_hand_built_images():
    qmodel = picker_model()
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, 0, 0] = 5
    images[1, 0, 0] = 200
    images[1, 3, 4] = 7
    hits = table_hits(qmodel, images)["t"]
    np.testing.assert_array_equal(np.flatnonzero(hits) - 32, [0, 5, 31])
    np.testing.assert_array_equal(np.flatnonzero(table_hits(qmodel, images[:1])["t"]) - 32,
                                  [0, 5])
    words = weight_hits(qmodel, images)["t"]
    expected = np.zeros((10, 784), bool)
    expected[:, [0, 3 * 28 + 4]] = True
    np.testing.assert_array_equal(words, expected)


def test_conv_taps_see_the_zero_padding():
    qmodel = box_model()
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 0, 0] = 1
    taps = weight_hits(qmodel, image)["b"][0, 0]
    np.testing.assert_array_equal(taps, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(np.flatnonzero(table_hits(qmodel, image)["b"]) - 128, [0, 1])
    image[0, 5, 5] = 255
    image[0, 5, 6] = 255
    assert table_hits(qmodel, image)["b"][127 + 128]


def test_reachability_of_hand_built_layer():
    table = reachable_tables(picker_model())["t"]
    assert (table["low"], table["high"], table["reachable"]) == (0, 31, 32)
    assert table["reachable_runs"] == [[0, 31]]
    [gap] = table["unreachable"]
    assert (gap["low"], gap["high"]) == (-32, -1)
    assert "index <= -1 needs acc < 0" in gap["reason"]
    assert "smallest accumulator" in gap["reason"] and "[0, 255]" in gap["reason"]
    box = reachable_tables(box_model())["b"]
    assert (box["low"], box["high"]) == (0, 127)  # 9 * 255 saturates at 127
    acc_hi = coverage._propagate(box_model())[0]["acc_hi"][0]
    assert (acc_hi[0, 0], acc_hi[0, 1], acc_hi[14, 14]) == (4 * 255, 6 * 255, 9 * 255)


def test_reachability_reports_gaps_between_units():
    qmodel = picker_model()
    layer = qmodel.layers[0]
    layer.weight[0, 0] = 0
    layer.weight[1, 1] = 1
    layer.bias = np.array([0, 1] + [-1] * 8, np.int64)
    table = reachable_tables(qmodel)["t"]
    # unit 0 is always 0, unit 1 is 1..31 (saturated), the rest -1: nothing is ever below -1
    assert table["reachable_runs"] == [[-1, 31]]
    layer.bias[2:] = -20
    layer.bias_format = FixedFormat(6, 0)
    table = reachable_tables(qmodel)["t"]
    assert table["reachable_runs"] == [[-20, -20], [0, 31]]
    gap = [run for run in table["unreachable"] if run["low"] == -19][0]
    assert gap["high"] == -1 and "at most acc -20" in gap["reason"]
    assert "at least acc 0" in gap["reason"]


@pytest.mark.parametrize("kind", ["conv", "dense", "subsample", "maxpool"])
@pytest.mark.parametrize("seed", range(40))
def test_intervals_contain_every_output(kind, seed):
    """Random layers of every format, rounding, overflow and activation: each output element
    (and each table index) of random and extreme inputs lies within its interval."""
    layer, x = random_layer(seed, kind)
    analysis = coverage._propagate(as_model(layer))[0]
    lo, hi = analysis["in_lo"], analysis["in_hi"]
    assert (x >= lo).all() and (x <= hi).all()
    run = LAYER_FUNCTIONS[kind]
    y = run(layer, x)
    assert (y >= analysis["out_lo"]).all() and (y <= analysis["out_hi"]).all()
    if layer.activation == "tanh":
        index = run(index_layer(layer), x)
        assert (index >= analysis["index_lo"]).all() and (index <= analysis["index_hi"]).all()


def test_first_layer_bounds_are_attained():
    """A first layer's bounds are exact: the sign pattern of a map's weights reaches them."""
    qmodel = quantize_model(resolve_model("lenet5-classic")[0], sparse_images(16, seed=4), 6, 6)
    analysis = coverage._propagate(qmodel)[0]
    weight = qmodel.layers[0].weight[:, 0]
    images = np.zeros((12, 28, 28), np.uint8)
    for m in range(6):
        images[2 * m, 12:17, 12:17] = np.where(weight[m] > 0, 255, 0)
        images[2 * m + 1, 12:17, 12:17] = np.where(weight[m] < 0, 255, 0)
    index = kernels.conv_layer(index_layer(qmodel.layers[0]), images.reshape(-1, 1, 28, 28))
    for m in range(6):
        assert index[2 * m, m, 14, 14] == analysis["index_hi"][m, 14, 14]
        assert index[2 * m + 1, m, 14, 14] == analysis["index_lo"][m, 14, 14]


def test_table_index_is_what_the_table_is_looked_up_with(small_models):
    qmodel = small_models["lenet5-classic"]
    images = sparse_images(30, seed=5)
    trace = simulate(qmodel, images, trace=True).trace
    x = images.reshape(-1, 1, 28, 28)
    for layer in qmodel.layers:
        if layer.activation == "tanh":
            index = LAYER_FUNCTIONS[layer.kind](index_layer(layer), x)
            np.testing.assert_array_equal(layer.lut[index - layer.pre_format.min_int],
                                          trace[layer.name])
        x = trace[layer.name]
    with pytest.raises(HwlenetError, match="no table"):
        index_layer(small_models["lenet5-relu"].layers[0])


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_nothing_hits_what_the_analysis_rules_out(small_models, directed, name):
    qmodel = small_models[name]
    base, vectors = directed[name]
    images = np.concatenate([base, vectors, sparse_images(200, seed=6, density=0.9),
                             coverage._structured_images(base, np.random.default_rng(0))])
    reach = reachable_tables(qmodel)
    for layer_name, hits in table_hits(qmodel, images).items():
        reachable = np.zeros(hits.size, bool)
        for low, high in reach[layer_name]["reachable_runs"]:
            reachable[low - reach[layer_name]["index_min"] : high
                      - reach[layer_name]["index_min"] + 1] = True
        assert not (hits & ~reachable).any(), layer_name
        assert reach[layer_name]["reachable"] == reachable.sum()
    coverage_report(qmodel, images)  # raises if anything contradicts the analysis


def edge_misses(table):
    """Entries of the missed runs that touch a proven-unreachable range: where the interval
    analysis, which takes a layer's inputs as independent, is loosest. (For the classic model's
    S2 these need the four overlapping C1 windows of a 2x2 block saturated together; no search
    reaches them and the bounds cannot exclude them.)"""
    bounds = ({run["low"] - 1 for run in table["unreachable"]}
              | {run["high"] + 1 for run in table["unreachable"]})
    return sum(high - low + 1 for low, high in table["missed"]
               if low in bounds or high in bounds)


def test_directed_vectors_cover_every_reachable_entry(small_models, directed):
    qmodel = small_models["lenet5-classic"]
    base, vectors = directed["lenet5-classic"]
    before = coverage_report(qmodel, base)
    after = coverage_report(qmodel, np.concatenate([base, vectors]))
    assert 0 < len(vectors) <= 256 and vectors.dtype == np.uint8
    assert vectors.shape[1:] == (28, 28)
    assert any(row["table"]["missed"] for row in before["layers"] if row["table"])
    for row in after["layers"]:
        if row["table"]:
            table = row["table"]
            # every miss is at the edge of a proven-unreachable range, and there are few
            assert table["hit"] + edge_misses(table) == table["reachable"], row
            assert edge_misses(table) <= 2, row
        if row["weights"]:
            assert row["weights"]["fraction_of_possible"] == 1.0


def test_directed_vectors_exercise_idle_relu_units_and_make_words_live(small_models, directed):
    qmodel = small_models["lenet5-relu"]
    base, vectors = directed["lenet5-relu"]
    before = coverage_report(qmodel, base)
    after = coverage_report(qmodel, np.concatenate([base, vectors]))
    fraction = {row["name"]: row["weights"]["fraction"] for row in before["layers"]
                if row["weights"]}
    assert fraction["fc2"] < 1.0
    for row in after["layers"]:
        assert row["table"] is None
        if row["weights"]:
            assert row["weights"]["fraction_of_possible"] == 1.0, row
    live = {row["name"]: (first["weights"]["live_fraction_of_possible"],
                          row["weights"]["live_fraction_of_possible"])
            for first, row in zip(before["layers"], after["layers"]) if row["weights"]}
    for name in ("fc1", "fc2"):
        assert live[name][0] < 0.5 and live[name][1] > 0.75, (name, live[name])


def test_directed_vectors_make_weight_bit_flips_visible(small_models, directed):
    """A short flip search on the small ReLU model: most flips of its dense layers that the
    ordinary vectors leave hidden become visible, and none proven invisible does."""
    qmodel = small_models["lenet5-relu"]
    base, vectors = directed["lenet5-relu"]
    before, after = (coverage_report(qmodel, images)["layers"]
                     for images in (base, np.concatenate([base, vectors])))
    for first, row in zip(before, after):
        if qmodel.layer(row["name"]).kind != "dense":
            assert row["weights"] is None or row["weights"]["flips"] is None
            continue
        shown = (first["weights"]["visible_flip_fraction_of_possible"],
                 row["weights"]["visible_flip_fraction_of_possible"])
        assert shown[0] < 0.8 and shown[1] > 0.8, (row["name"], shown)
    # without the flip search, the same short search leaves them hidden
    plain = directed_vectors(qmodel, base, seed=3, rounds=2, batch=32, steps=60, flips=False)
    fc2 = coverage_report(qmodel, np.concatenate([base, plain]))["layers"][-2]["weights"]
    assert fc2["visible_flip_fraction_of_possible"] < 0.8


def test_directed_vectors_are_deterministic(small_models):
    qmodel = small_models["lenet5-classic"]
    base = sparse_images(20, seed=1)
    options = dict(rounds=2, steps=40, flip_rounds=3)
    first = directed_vectors(qmodel, base, seed=7, **options)
    np.testing.assert_array_equal(first, directed_vectors(qmodel, base, seed=7, **options))
    other = directed_vectors(qmodel, base, seed=8, **options)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_directed_vectors_respect_the_limit_and_show_progress(small_models, capsys):
    qmodel = small_models["lenet5-classic"]
    vectors = directed_vectors(qmodel, None, max_vectors=2, rounds=1, steps=3, progress=True,
                               flip_rounds=1)
    assert len(vectors) == 2
    assert "directed vectors" in capsys.readouterr().err
    assert len(directed_vectors(qmodel, max_vectors=0)) == 0


def test_report_is_json_ready(small_models, directed):
    qmodel = small_models["lenet5-classic"]
    base, _ = directed["lenet5-classic"]
    report = coverage_report(qmodel, base)
    assert json.loads(json.dumps(report)) == report
    assert [row["name"] for row in report["layers"]] == qmodel.layer_names
    row = report["layers"][1]
    table = row["table"]
    entries = 1 << qmodel.layers[1].pre_format.width
    assert table["entries"] == entries
    assert table["fraction"] == table["hit"] / entries
    assert table["fraction_of_reachable"] == table["hit"] / table["reachable"]
    missed = sum(high - low + 1 for low, high in table["missed"])
    assert missed == table["reachable"] - table["hit"]
    assert row["weights"] == {"words": 6, "exercised": 6, "fraction": 1.0, "idle": 0,
                              "fraction_of_possible": 1.0, "live": 6, "live_fraction": 1.0,
                              "never_live": 0, "live_fraction_of_possible": 1.0,
                              "flips": None, "visible_flips": None,
                              "visible_flip_fraction": None, "invisible_flips": None,
                              "visible_flip_fraction_of_possible": None}
    dense = report["layers"][-1]["weights"]
    assert dense["flips"] == qmodel.layers[-1].weight.size * qmodel.layers[-1].weight_format.width
    assert dense["visible_flip_fraction"] == dense["visible_flips"] / dense["flips"]
    assert dense["visible_flip_fraction_of_possible"] == (
        dense["visible_flips"] / (dense["flips"] - dense["invisible_flips"]))
    reach = reachable_tables(qmodel)
    assert json.loads(json.dumps(reach)) == reach


@pytest.mark.parametrize("call,message", [
    (lambda q: table_hits(q, np.zeros((2, 28, 28), np.float32)), "uint8"),
    (lambda q: weight_hits(q, np.zeros((2, 27, 28), np.uint8)), "shape"),
    (lambda q: table_hits(q, np.zeros((2, 28, 28), np.uint8), chunk=0), "chunk"),
    (lambda q: directed_vectors(q, max_vectors=-1), "max_vectors"),
    (lambda q: directed_vectors(q, lr=0), "lr"),
    (lambda q: directed_vectors(q, width=1), "width must be an integer of at least 2"),
    (lambda q: directed_vectors(q, flip_rounds=-1), "flip_rounds must be a non-negative"),
    (lambda q: directed_vectors(q, flip_batch=0), "flip_batch must be a positive integer"),
    (lambda q: directed_vectors(q, flips=1), "flips must be True or False"),
])
def test_bad_arguments(small_models, call, message):
    with pytest.raises(HwlenetError, match=message):
        call(small_models["lenet5-classic"])


@pytest.mark.slow
def test_eight_bit_classic_reaches_nearly_every_entry(qmodels, vector_images):
    qmodel = qmodels["lenet5-classic"]
    base = vector_images[:100]
    vectors = directed_vectors(qmodel, base, seed=0)
    report = coverage_report(qmodel, np.concatenate([base, vectors, sparse_images(300, 9)]))
    tables = [row["table"] for row in report["layers"] if row["table"]]
    # away from the edges of the proven-unreachable ranges (see edge_misses), nearly everything
    assert all(table["hit"] >= 0.99 * (table["reachable"] - edge_misses(table))
               for table in tables)
    assert all(edge_misses(table) <= 16 for table in tables)
    assert sum(t["hit"] for t in tables) >= 0.999 * sum(t["reachable"] - edge_misses(t)
                                                         for t in tables)
    assert sum(t["hit"] for t in tables) >= 0.99 * sum(t["reachable"] for t in tables)
    assert len(vectors) <= 120
