"""The RBF output layer in the artifact: its integer form, its exactness, its validation."""

import copy
import json

import numpy as np
import pytest
import torch

from hwlenet import HwlenetError
from hwlenet.models import build_model
from hwlenet.quant.artifact import (accumulator_bound, load_artifact, rbf_layer,
                                    save_artifact)
from hwlenet.quant.fixed import FixedFormat
from hwlenet.quant.quantize import quantize_model
from hwlenet.rbf_codes import rbf_codes
from hwlenet.sim import kernels, simulate
from hwlenet.sim.reference import reference_layer
from hwlenet.sim.simulator import compare_with_float

CALIBRATION = np.random.default_rng(4).integers(0, 256, (24, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def classic():
    """A randomly initialised RBF classic model quantized at 8 bits."""
    torch.manual_seed(0)
    model = build_model("classic").eval()
    return model, quantize_model(model, CALIBRATION)


def exact_penalties(x, codes, frac):
    """``2**(2 frac) * y`` with ``y_i = sum_j (x_j 2**-frac - c_ij)^2``, in Python integers
    (``frac >= 0``), and the same scaled by ``2**(-2 frac)`` as a fraction-free check for
    ``frac < 0``."""
    if frac >= 0:
        return [sum((int(v) - int(c) * (1 << frac)) ** 2 for v, c in zip(x, row))
                for row in codes]
    return [sum((int(v) * (1 << -frac) - int(c)) ** 2 for v, c in zip(x, row)) for row in codes]


def lowest_argmin(values):
    best = min(values)
    return min(i for i, v in enumerate(values) if v == best)


@pytest.mark.parametrize("frac", [6, 0, 3, -2, 14])
def test_rbf_layer_is_the_documented_dense_layer(frac):
    codes = rbf_codes()
    fmt = FixedFormat(8, frac, True, "half_even", "wrap")
    layer = rbf_layer("out", codes, fmt)
    scale = max(0, -frac)
    assert layer.kind == "dense" and layer.activation == "none" and layer.is_rbf
    np.testing.assert_array_equal(layer.weight, -2 * codes.astype(np.int64) * 2**scale)
    np.testing.assert_array_equal(layer.bias, np.full(10, 84))
    assert layer.bias_format.frac == 0 and layer.bias_shift == layer.acc_frac == max(frac, 0)
    assert layer.output_format.frac == layer.acc_frac and layer.requant_shift == 0
    assert layer.output_format.width == layer.accumulator_width
    assert (layer.output_format.rounding, layer.output_format.overflow) == ("half_even", "wrap")
    # the bound: 84 2**acc_frac + 2 * 84 * 2**scale * max|X|, and one sign bit more
    bound = 84 * 2**layer.acc_frac + 2 * 84 * 2**scale * 128
    assert accumulator_bound(layer) == bound
    assert layer.accumulator_width == bound.bit_length() + 1


@pytest.mark.parametrize("frac,seed", [(6, 0), (6, 1), (0, 2), (-2, 3), (9, 4)])
def test_reduced_penalty_differs_from_the_exact_one_by_sum_x_squared(frac, seed):
    """P_i = 84 2**f - 2 c_i . X exactly (Python integers), 2**(2f) y_i = sum X^2 + 2**f P_i,
    and the class (argmin, lowest index on ties) is the exact penalty's; extreme inputs never
    overflow the accumulator width in the numba kernels."""
    rng = np.random.default_rng(seed)
    codes = rbf_codes().astype(np.int64)
    fmt = FixedFormat(max(8, frac + 3), frac)  # 1.0 is representable
    layer = rbf_layer("out", codes, fmt)
    inputs = [rng.integers(fmt.min_int, fmt.max_int + 1, 84) for _ in range(20)]
    inputs += [np.full(84, fmt.max_int), np.full(84, fmt.min_int), np.zeros(84, np.int64)]
    # worst cases for one unit: every input against (or along) its code
    inputs += [np.where(codes[3] > 0, fmt.min_int, fmt.max_int),
               np.where(codes[3] > 0, fmt.max_int, fmt.min_int)]
    # exact ties: halfway between codes 2 and 7, and F6 equal to a code
    one = 1 << max(frac, 0)
    inputs += [(codes[2] + codes[7]) // 2 * one, codes[5] * one]
    batch = np.stack(inputs).astype(np.int64)
    fast = kernels.run_layer(layer, batch)
    for x, penalties in zip(batch, fast):
        reduced = reference_layer(layer, x)
        np.testing.assert_array_equal(penalties, reduced)
        exact = exact_penalties(x, codes, frac)
        squares = sum(int(v) ** 2 for v in x)
        if frac >= 0:
            assert exact == [squares + (int(p) << frac) for p in reduced]
        else:
            assert exact == [squares * 4**-frac + int(p) for p in reduced]
        assert max(abs(int(p)) for p in reduced) < 1 << (layer.accumulator_width - 1)
        assert lowest_argmin(exact) == lowest_argmin(list(reduced))
    model = copy.copy(_single_layer_model(layer))
    classes = model.classify(fast)
    assert classes[-2] == 2  # the tie between 2 and 7 goes to the lower index
    assert classes[-5] == 0  # all-zero F6: every penalty is 84 2**f
    if frac >= 0:
        assert classes[-1] == 5


def _single_layer_model(layer):
    from hwlenet.quant.artifact import QuantizedModel

    return QuantizedModel("classic", layer.input_format, [layer], output_rule="argmin")


def test_quantized_classic_ends_in_the_rbf_layer(classic):
    model, qmodel = classic
    out = qmodel.layers[-1]
    f6 = qmodel.layer("f6")
    assert qmodel.output_rule == "argmin" and out.is_rbf and out.name == "out"
    np.testing.assert_array_equal(out.codes, rbf_codes())
    assert out.input_format == f6.output_format
    assert out.acc_frac == f6.output_format.frac
    assert not any(layer.is_rbf for layer in qmodel.layers[:-1])
    # the classes are the argmin of the simulated penalties, and match the float model's
    result = simulate(qmodel, CALIBRATION, trace=True)
    assert result.output_kind == "penalties"
    np.testing.assert_array_equal(result.classes, result.logits.argmin(axis=1))
    report = compare_with_float(qmodel, CALIBRATION, np.zeros(len(CALIBRATION), np.uint8))
    assert report["output_rule"] == "argmin" and report["output"] == "penalties"
    with torch.no_grad():
        want = model(torch.from_numpy(CALIBRATION).float().unsqueeze(1)).argmax(1).numpy()
    assert np.mean(want == result.classes) >= 0.9
    assert report["layers"][-1]["sqnr_db"] > 20


def test_rbf_artifact_round_trip(tmp_path, classic):
    _, qmodel = classic
    save_artifact(qmodel, tmp_path / "a.npz")
    loaded = load_artifact(tmp_path / "a.npz")
    assert loaded.output_rule == "argmin" and loaded.layers[-1].is_rbf
    np.testing.assert_array_equal(loaded.layers[-1].codes, qmodel.layers[-1].codes)
    manifest = loaded.manifest()
    assert manifest["output_rule"] == "argmin" and manifest["layers"][-1]["rbf"] is True
    assert all("rbf" not in entry for entry in manifest["layers"][:-1])
    np.testing.assert_array_equal(simulate(loaded, CALIBRATION[:6]).logits,
                                  simulate(qmodel, CALIBRATION[:6]).logits)


def _damaged(tmp_path, qmodel, edit):
    path = tmp_path / "q.npz"
    save_artifact(qmodel, path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    manifest = json.loads(str(arrays["manifest"]))
    edit(arrays, manifest)
    arrays["manifest"] = np.array(json.dumps(manifest))
    np.savez(path, **arrays)
    return path


def _flip_code(arrays, manifest):
    codes = arrays["out.codes"].copy()
    codes[4, 10] *= -1
    arrays["out.codes"] = codes


def _flip_weight(arrays, manifest):
    weight = arrays["out.weight"].copy()
    weight[4, 10] *= -1
    arrays["out.weight"] = weight


@pytest.mark.parametrize("edit,message", [
    (_flip_code, "weight is not derived from its codes"),
    (_flip_weight, "weight is not derived from its codes"),
    (lambda a, m: a.update({"out.bias": a["out.bias"] + 1}), "bias is not derived"),
    (lambda a, m: a.update({"out.codes": a["out.codes"] * 2}), "codes must be at least 2 rows "
                                                               "of -1 and \\+1"),
    (lambda a, m: m["layers"][-1]["output_format"].update(frac=3), "output format is"),
    (lambda a, m: m["layers"][-1]["accumulator"].update(width=40), "accumulator width is"),
    (lambda a, m: m.update(output_rule="argmax"), "argmin exactly when the last layer is an "
                                                  "RBF layer"),
    (lambda a, m: m.update(output_rule="median"), "output rule 'median' is not one of"),
    (lambda a, m: m["layers"][-1].update(rbf="yes"), "'rbf' must be true or false"),
    (lambda a, m: a.pop("out.codes"), "tensor out.codes is missing"),
    (lambda a, m: m["layers"][-1].update(activation="relu"), "dense layer without activation"),
])
def test_rejects_inconsistent_rbf_layers(tmp_path, classic, edit, message):
    with pytest.raises(HwlenetError, match=message):
        load_artifact(_damaged(tmp_path, classic[1], edit))


def test_rbf_layer_must_be_last_and_alone_makes_argmin(classic):
    qmodel = copy.deepcopy(classic[1])
    qmodel.output_rule = "argmax"
    with pytest.raises(HwlenetError, match="argmin exactly when"):
        qmodel.validate()
    qmodel = copy.deepcopy(classic[1])
    f6 = qmodel.layer("f6")
    f6.codes = np.ones((84, 120), np.int64)
    with pytest.raises(HwlenetError, match="layer f6: an RBF layer is a dense layer without "
                                           "activation"):
        qmodel.validate()


@pytest.mark.parametrize("codes,message", [
    (np.ones((1, 84)), "at least 2 rows"), (np.zeros((10, 84)), "of -1 and \\+1"),
    (np.ones(84), "shape \\(84,\\)")])
def test_rbf_layer_rejects_bad_codes(codes, message):
    with pytest.raises(HwlenetError, match=message):
        rbf_layer("out", codes, FixedFormat(8, 6))


def test_rbf_layer_refuses_penalties_beyond_63_bits():
    with pytest.raises(HwlenetError, match="do not fit 63 bits"):
        rbf_layer("out", rbf_codes(), FixedFormat(8, -70))


@pytest.mark.parametrize("key", ["weight", "bias", "output"])
def test_config_cannot_override_the_rbf_layer(key):
    torch.manual_seed(0)
    with pytest.raises(HwlenetError, match="layer out: the RBF output's formats follow"):
        quantize_model(build_model("classic"), CALIBRATION[:4],
                       config={"layers": {"out": {key: {"width": 12}}}})


def test_fc_classic_keeps_the_argmax_rule():
    torch.manual_seed(0)
    qmodel = quantize_model(build_model("classic-fc"), CALIBRATION[:8])
    assert qmodel.output_rule == "argmax" and not qmodel.layers[-1].is_rbf
    result = simulate(qmodel, CALIBRATION[:8])
    assert result.output_kind == "logits"
    np.testing.assert_array_equal(result.classes, result.logits.argmax(axis=1))


def test_old_manifests_without_a_rule_read_as_argmax(tmp_path):
    torch.manual_seed(0)
    qmodel = quantize_model(build_model("relu"), CALIBRATION[:8])

    def drop(arrays, manifest):
        manifest.pop("output_rule")
    assert load_artifact(_damaged(tmp_path, qmodel, drop)).output_rule == "argmax"
