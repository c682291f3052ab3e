"""The per-layer precision search, its config file, its plot, and the hardware it leads to."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.cli import main
from hwlenet.data import MnistSplit, split_validation
from hwlenet.defaults import LR_CANDIDATES
from hwlenet.quant.autotune import autotune, costs, pareto_front, plot_search, refine_with_qat
from hwlenet.quant.qat import classes_of
from hwlenet.quant.quantize import load_config, quantize_model
from hwlenet.rtl.plan import plan_hardware
from hwlenet.sim import simulate
from hwlenet.verify.cosim import run_cosim
from hwlenet.verify.emit import emit_verilog


def _labelled(images):
    """Images labelled by the float relu model (a model's own labels make float exact)."""
    model = resolve_model("lenet5-relu")[0]
    from hwlenet.train import predict

    return MnistSplit(images, predict(model, images).argmax(1).astype(np.uint8), "fixture")


@pytest.fixture(scope="module")
def tiny_search(digit_images):
    """``lenet5-relu`` searched over weight widths 8, 5 and 3 and activation width 5, with a
    1-point budget on 200 images."""
    calibration, images = digit_images
    validation = _labelled(images)
    model = resolve_model("lenet5-relu")[0]
    return model, validation, autotune(model, calibration[:200], validation, 1.0,
                                       weight_widths=(8, 5, 3), act_widths=(5,))


def test_costs_of_the_uniform_8_bit_model(qmodels):
    qmodel = qmodels["lenet5-relu"]
    found = costs(qmodel)
    weights = sum(layer.weight.size for layer in qmodel.layers if layer.has_weights)
    assert found["weight-bits"] == 8 * weights
    assert found["multipliers"] == 8 * 9  # 8-bit weights times the 9-bit signed pixel operand
    assert found["activation-bits"] == sum(
        int(np.prod(layer.out_shape)) * layer.output_format.width
        for layer in qmodel.layers if layer.kind != "maxpool")


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_multiplier_cost_is_the_planned_multiplier(name, digit_images):
    """The PE multiplier the plan builds, also when the subsampling coefficients (applied by the
    post-processor, not the array) are the widest weights."""
    model = resolve_model(name)[0]
    config = {"layers": {"c1": {"weight": {"width": 3}}, "c3": {"weight": {"width": 3}}}}
    if name == "lenet5-classic":
        config["layers"]["s2"] = {"weight": {"width": 8}}
    qmodel = quantize_model(model, digit_images[0][:100], 4, 4, config=config)
    plan = plan_hardware(qmodel, 8, 8)
    assert costs(qmodel)["multipliers"] == plan.weight_width * plan.operand_width
    assert plan.weight_width == 4


def test_search_answer_is_feasible_and_no_costlier_than_uniform(tiny_search):
    model, validation, result = tiny_search
    best = result["best"]
    assert result["configurations"] == len(result["evaluated"]) >= 4
    assert best["accuracy"] >= result["threshold"]
    assert result["threshold"] == pytest.approx(result["float_accuracy"] - 0.01)
    assert best["weight-bits"] <= result["uniform8"]["weight-bits"]
    feasible = [e for e in result["evaluated"] if e["accuracy"] >= result["threshold"]]
    assert best["weight-bits"] == min(e["weight-bits"] for e in feasible)
    assert {e["phase"] for e in result["evaluated"]} >= {"uniform", "layer weights"}
    # the written config reproduces the chosen candidate exactly
    qmodel = quantize_model(model, np.zeros((1, 28, 28), np.uint8), config=result["config"])
    accuracy = np.mean(classes_of(qmodel, simulate(qmodel, validation.images).logits)
                       == validation.labels)
    assert accuracy == best["accuracy"]
    assert costs(qmodel)["weight-bits"] == best["weight-bits"]


def test_search_is_deterministic(tiny_search, digit_images):
    model, validation, result = tiny_search
    again = autotune(model, digit_images[0][:200], validation, 1.0, weight_widths=(8, 5, 3),
                     act_widths=(5,))
    assert again["config"] == result["config"]
    assert [e["accuracy"] for e in again["evaluated"]] == [e["accuracy"] for e in
                                                           result["evaluated"]]


def test_plot_is_written(tiny_search, tmp_path):
    path = tmp_path / "search.png"
    plot_search(tiny_search[2], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("points, front", [
    ([(3, 90.0), (1, 80.0), (2, 85.0), (2, 70.0), (4, 89.0)], [1, 2, 0]),
    ([(1, 50.0), (1, 60.0)], [1]),
    ([(5, 99.0)], [0]),
])
def test_pareto_front(points, front):
    assert pareto_front(points) == front


@pytest.mark.parametrize("options, message", [
    ({"max_drop": -1}, "max drop must be"),
    ({"objective": "luts"}, "objective must be one of"),
    ({"weight_widths": (8, 1)}, "weight widths must be integers"),
    ({"weight_widths": ()}, "must not be empty"),
    ({"max_drop": 0.0, "weight_widths": (2,)}, "no uniform 2-bit config"),
])
def test_bad_search_arguments(digit_images, options, message):
    calibration, images = digit_images
    arguments = {"max_drop": 1.0, "objective": "weight-bits", "weight_widths": (8,),
                 "act_widths": ()}
    arguments.update(options)
    with pytest.raises(HwlenetError, match=message):
        autotune(resolve_model("lenet5-relu")[0], calibration[:50], _labelled(images[:50]),
                 **arguments)


def test_autotune_cli_writes_a_config_quantize_accepts(tmp_path, data_dir):
    config, plot, report = tmp_path / "c.json", tmp_path / "p.png", tmp_path / "r.json"
    result = CliRunner().invoke(main, [
        "autotune", "lenet5-relu", "--max-drop", "0.5", "--objective", "multipliers",
        "--weight-widths", "8,4", "--act-widths", "", "--validation", "200",
        "--augmented-copies", "0", "--calib", "100", "--limit", "200", "--data-dir",
        str(data_dir), "--out", str(config), "--plot", str(plot), "--json", str(report)])
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())
    assert summary["objective"] == "multipliers" and summary["test_images"] == 200
    assert summary["configurations"] == len(summary["evaluated"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert load_config(config) == summary["config"]
    artifact = tmp_path / "q.npz"
    result = CliRunner().invoke(main, ["quantize", "lenet5-relu", "--config", str(config),
                                       "--calib", "50", "--data-dir", str(data_dir),
                                       "--out", str(artifact)])
    assert result.exit_code == 0, result.output
    # emit-verilog accepts the config for the artifact quantized with it, and refuses another
    result = CliRunner().invoke(main, ["emit-verilog", str(artifact), "--config", str(config),
                                       "--array", "2x2", "--out", str(tmp_path / "rtl")])
    assert result.exit_code == 0, result.output
    uniform = tmp_path / "u.npz"
    assert CliRunner().invoke(main, ["quantize", "lenet5-relu", "--bits", "8", "--calib", "50",
                                     "--data-dir", str(data_dir), "--out",
                                     str(uniform)]).exit_code == 0
    result = CliRunner().invoke(main, ["emit-verilog", str(uniform), "--config", str(config),
                                       "--out", str(tmp_path / "rtl8")])
    assert result.exit_code == 2 and "the artifact's format is" in result.output
    assert not (tmp_path / "rtl8").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--max-drop", "-1"], "--max-drop"),
    (["--max-drop", "0.1", "--weight-widths", "8,x"], "comma-separated integers"),
    (["--max-drop", "0.1", "--weight-widths", "8,1"], "from 2 to 16"),
    (["--max-drop", "0.1", "--objective", "luts"], "--objective"),
    (["--max-drop", "0.1", "--qat-epochs", "1"], "needs --out-model"),
    (["--max-drop", "0.1", "--plot", "no/such/p.png"], "does not exist"),
])
def test_autotune_bad_input_is_one_line(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["autotune", "lenet5-relu", "--out", "c.json"]
                                + arguments)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], \
        result.output
    assert not (tmp_path / "c.json").exists()


def test_autotuned_mixed_widths_cosimulate_bit_exact(tiny_search, digit_images, tmp_path):
    """Issue 10: the RTL of an autotuned (mixed-width) config is bit-exact on a 4x4 array."""
    model, _, result = tiny_search
    hidden = [entry for name, entry in result["config"]["layers"].items() if name != "out"]
    widths = {entry["weight"]["width"] for entry in result["config"]["layers"].values()}
    outputs = {entry["output"]["width"] for entry in hidden}
    assert len(widths) > 1 or len(outputs) > 1, "the search should mix widths"
    qmodel = quantize_model(model, digit_images[0][:200], config=result["config"])
    emit_verilog(qmodel, tmp_path, 4, 4, digit_images[1][:10])
    report = run_cosim(tmp_path, "verilator", 10, jobs=2)
    assert report["images"] == 10 and report["mismatches"] == 0 and report["bit_exact"]


def test_qat_refinement_trains_only_on_the_search_split(digit_images):
    calibration, images = digit_images
    model = resolve_model("lenet5-relu")[0]
    search, validation = split_validation(_labelled(calibration[:160]), 60, seed=2)
    config = autotune(model, calibration[:100], validation, 5.0, weight_widths=(4, 3),
                      act_widths=())["config"]
    before = {key: value.clone() for key, value in model.state_dict().items()}
    selection = refine_with_qat(model, search, validation, calibration[:100], config, 1, seed=0)
    assert any(not torch.equal(before[key], value) for key, value in model.state_dict().items())
    artifact = quantize_model(model, calibration[:100], config=config)
    expected = np.mean(simulate(artifact, validation.images).classes == validation.labels)
    assert selection["validation_accuracy"] == expected
    assert selection["lr"] in LR_CANDIDATES and selection["train_images"] == len(search)
