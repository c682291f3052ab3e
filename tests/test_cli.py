import json

import pytest
from click.testing import CliRunner

from hwlenet.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("train", "evaluate", "quantize", "simulate"):
        assert command in result.output


@pytest.mark.parametrize("name,floor", [("lenet5-classic", 0.95), ("lenet5-relu", 0.95)])
def test_evaluate_json(tmp_path, data_dir, name, floor):
    out = tmp_path / "e.json"
    result = run("evaluate", name, "--data-dir", data_dir, "--limit", 300, "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["model"] == name and report["images"] == 300
    assert report["accuracy"] > floor


def test_evaluate_full_test_set_meets_goals(data_dir):
    for name, goal in (("lenet5-classic", 0.987), ("lenet5-relu", 0.990)):
        result = run("evaluate", name, "--data-dir", data_dir)
        assert result.exit_code == 0, result.output
        accuracy = float(result.output.split("float accuracy ")[1].split()[0])
        assert accuracy >= goal, (name, accuracy)


@pytest.mark.parametrize("args,message", [
    (["evaluate", "nosuchmodel", "--data-dir", "."], "not a file nor a shipped model"),
    (["evaluate", "lenet5-relu", "--limit", "0"], "Invalid value for '--limit'"),
    (["quantize", "--bits", "0", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--bits", "33", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--act-bits", "1", "--out", "q.npz"], "--act-bits must be"),
    (["quantize", "--calib", "0", "--out", "q.npz"], "--calib must be at least 1"),
    (["simulate", "missing.npz"], "no such artifact"),
    (["train", "--epochs", "0", "--out", "m.pt"], "Invalid value for '--epochs'"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    result = run("evaluate", bad, "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert "not a readable checkpoint" in result.output


def test_quantize_then_simulate(tmp_path, data_dir):
    artifact, report, plot = tmp_path / "q.npz", tmp_path / "s.json", tmp_path / "s.png"
    result = run("quantize", "lenet5-relu", "--bits", 8, "--calib", 200, "--data-dir", data_dir,
                 "--out", artifact)
    assert result.exit_code == 0, result.output
    result = run("simulate", artifact, "--data-dir", data_dir, "--limit", 200, "--json", report,
                 "--plot", plot)
    assert result.exit_code == 0, result.output
    payload = json.loads(report.read_text())
    assert payload["images"] == 200
    assert {"float_accuracy", "fixed_accuracy", "agreement"} <= set(payload)
    assert [row["name"] for row in payload["layers"]][-1] == "out"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_quantize_config_naming_missing_layer(tmp_path, data_dir):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"layers": {"fc9": {"weight": {"width": 4}}}}))
    result = run("quantize", "lenet5-relu", "--config", config, "--data-dir", data_dir,
                 "--out", tmp_path / "q.npz")
    assert result.exit_code == 1
    assert "config names layer 'fc9'" in result.output


def test_train_tiny(tmp_path, data_dir):
    out = tmp_path / "m.pt"
    result = run("train", "--arch", "relu", "--epochs", 1, "--data-dir", data_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "test accuracy" in result.output
