import json
import re

import numpy as np
import pytest
import torch

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.models import TANH_AMPLITUDE, TANH_SLOPE
from hwlenet.quant.artifact import accumulator_bound, load_artifact, save_artifact
from hwlenet.quant.quantize import check_artifact_config, quantize_model
from hwlenet.sim import simulate

rng = np.random.default_rng(0)
CALIBRATION = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module", params=["lenet5-classic", "lenet5-classic-fc", "lenet5-relu"])
def quantized(request):
    model = resolve_model(request.param)[0]
    return model, quantize_model(model, CALIBRATION, provenance={"model": request.param})


def test_artifact_round_trip_is_deterministic(tmp_path, quantized):
    _, qmodel = quantized
    save_artifact(qmodel, tmp_path / "a.npz")
    save_artifact(qmodel, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_artifact(tmp_path / "a.npz")
    assert loaded.manifest() == qmodel.manifest()
    for mine, theirs in zip(qmodel.layers, loaded.layers):
        if mine.has_weights:
            np.testing.assert_array_equal(mine.weight, theirs.weight)
            np.testing.assert_array_equal(mine.bias, theirs.bias)
    np.testing.assert_array_equal(simulate(qmodel, CALIBRATION[:5]).logits,
                                  simulate(loaded, CALIBRATION[:5]).logits)


def test_accumulators_cover_worst_case_inputs(quantized):
    """Drive each dense layer with the input that maximises every output's magnitude."""
    _, qmodel = quantized
    for layer in qmodel.layers:
        if layer.kind == "dense":
            fmt = layer.input_format
            for sign in (1, -1):
                x = np.where(sign * layer.weight >= 0, fmt.max_int, fmt.min_int).astype(object)
                acc = (layer.weight.astype(object) * x).sum(axis=1) + layer.aligned_bias()
                assert max(abs(int(a)) for a in acc) <= accumulator_bound(layer)
            assert accumulator_bound(layer) < 2 ** (layer.accumulator_width - 1)


def test_tanh_tables_follow_the_scaled_tanh(quantized):
    _, qmodel = quantized
    for layer in qmodel.layers:
        if layer.activation == "tanh":
            pre, out = layer.pre_format, layer.output_format
            index = np.arange(pre.min_int, pre.max_int + 1)
            exact = TANH_AMPLITUDE * np.tanh(TANH_SLOPE * index * pre.lsb)
            assert np.abs(out.to_float(layer.lut) - exact).max() <= out.lsb / 2 + 1e-12
            assert np.all(np.diff(layer.lut) >= 0)


def test_first_layer_folds_normalisation(quantized):
    model, qmodel = quantized
    layer = qmodel.layers[0]
    assert layer.input_format.width == 8 and not layer.input_format.signed
    assert layer.input_format.frac == 0 and layer.padding == 2


def test_provenance(quantized):
    _, qmodel = quantized
    assert qmodel.provenance["calibration"] == {"images": 64, "method": "maxabs",
                                                "percentile": None}
    assert qmodel.provenance["weight_bits"] == 8


def test_config_overrides_a_layer(quantized):
    """The last layer with weights of its own takes the config (F6 for the classic model,
    whose RBF output then follows F6's output format)."""
    model, _ = quantized
    name = "f6" if model.output_rule == "argmin" else "out"
    config = {"layers": {name: {"weight": {"width": 6}, "output": {"width": 20, "frac": 12}}}}
    qmodel = quantize_model(model, CALIBRATION, config=config)
    layer = qmodel.layer(name)
    assert layer.weight_format.width == 6 and np.abs(layer.weight).max() <= 31
    assert (layer.output_format.width, layer.output_format.frac) == (20, 12)
    out = qmodel.layers[-1]
    if out.is_rbf:
        assert out.input_format == layer.output_format and out.acc_frac == 12
        assert out.accumulator_width == (84 * 2**12 + 2 * 84 * 2**19).bit_length() + 1


@pytest.mark.parametrize("entry, message", [
    (None, None),
    ({"weight": {"width": 7}}, "weight: the artifact's format is s6."),
    ({"output": {"frac": 11}}, "output: the artifact's format is s20.12"),
    ({"weight": {"overflow": "wrap"}}, "not overflow 'wrap'"),
    ({"pre": {"width": 8}}, "the artifact has no pre format"),
])
def test_artifact_config_check(quantized, entry, message):
    """``emit-verilog --config``: the artifact must carry every format the config sets."""
    model, _ = quantized
    name = "f6" if model.output_rule == "argmin" else "out"
    config = {"layers": {name: {"weight": {"width": 6}, "output": {"width": 20, "frac": 12}}}}
    qmodel = quantize_model(model, CALIBRATION, config=config)
    check_artifact_config(qmodel, config)
    if entry is None:
        with pytest.raises(HwlenetError, match="config c.json: names layer 'zz', which the "
                                               "artifact does not have"):
            check_artifact_config(qmodel, {"layers": {"zz": {}}}, "c.json")
        return
    if "pre" in entry and model.arch == "classic":
        name = "out"  # the RBF layer: tanh layers do have a pre format
    with pytest.raises(HwlenetError, match=f"layer {name}\\b.*{re.escape(message)}"):
        check_artifact_config(qmodel, {"layers": {name: entry}})


def test_percentile_calibration_gives_no_fewer_fraction_bits(quantized):
    model, qmodel = quantized
    clipped = quantize_model(model, CALIBRATION, method="percentile", percentile=99.0)
    for a, b in zip(qmodel.layers, clipped.layers):
        assert b.output_format.frac >= a.output_format.frac


@pytest.mark.parametrize("kwargs,message", [
    ({"weight_bits": 0}, "weight bits must be an integer from 2 to 32"),
    ({"weight_bits": 1}, "from 2 to 32"),
    ({"act_bits": 33}, "activation bits must be an integer from 2 to 32"),
    ({"config": {"layers": {"c9": {}}}}, "config names layer 'c9'"),
    ({"config": {"layers": {"c1": {"weight": {"bits": 3}}}}}, "expected keys"),
    ({"method": "median"}, "calibration method"),
    ({"weight_bits": 32, "act_bits": 32}, "accumulator; at most 63"),
])
def test_bad_settings(quantized, kwargs, message):
    model, _ = quantized
    with pytest.raises(HwlenetError, match=message):
        quantize_model(model, CALIBRATION, **kwargs)


def test_zero_calibration_images(quantized):
    with pytest.raises(HwlenetError, match="at least one image"):
        quantize_model(quantized[0], CALIBRATION[:0])


def test_non_finite_weights():
    model = resolve_model("lenet5-relu")[0]
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    with pytest.raises(HwlenetError, match="NaN or infinite"):
        quantize_model(model, CALIBRATION)


def damaged(tmp_path, qmodel, edit):
    path = tmp_path / "q.npz"
    save_artifact(qmodel, path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    edit(arrays)
    np.savez(path, **arrays)
    return path


def edit_manifest(change):
    def edit(arrays):
        manifest = json.loads(str(arrays["manifest"]))
        change(manifest)
        arrays["manifest"] = np.array(json.dumps(manifest))
    return edit


@pytest.mark.parametrize("edit,message", [
    (edit_manifest(lambda m: m.update(version=99)), "version 99 is not supported"),
    (edit_manifest(lambda m: m.update(arch="vgg")), "unknown architecture"),
    (edit_manifest(lambda m: m["layers"][1]["input_format"].update(width=3)), "does not match"),
    (edit_manifest(lambda m: m["layers"][0]["accumulator"].update(width=8)), "can overflow"),
    (edit_manifest(lambda m: m["layers"][0].pop("weight_format")), "malformed manifest"),
    (lambda a: a.update({"c1.weight": a["c1.weight"] * 1000}), "exceed their format"),
    (lambda a: a.pop("c1.bias"), "tensor c1.bias is missing"),
    (lambda a: a.pop("manifest"), "no manifest"),
])
def test_rejects_inconsistent_artifacts(tmp_path, quantized, edit, message):
    with pytest.raises(HwlenetError, match=message):
        load_artifact(damaged(tmp_path, quantized[1], edit))


def test_rejects_corrupt_file(tmp_path, quantized):
    path = tmp_path / "q.npz"
    save_artifact(quantized[1], path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(HwlenetError, match="not a readable quantized artifact"):
        load_artifact(path)


def test_rejects_non_archive(tmp_path):
    path = tmp_path / "q.npz"
    path.write_text("garbage")
    with pytest.raises(HwlenetError, match="not an .npz archive"):
        load_artifact(path)
