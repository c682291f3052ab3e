import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from hwlenet.cli import cosim_lines, main
from hwlenet.data import FILES, SAMPLE_TRAIN_IMAGES
from hwlenet.errors import EXIT_INPUT_ERROR, EXIT_MISMATCH
from hwlenet.quant.artifact import MAX_FRAC


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("train", "evaluate", "quantize", "simulate"):
        assert command in result.output


@pytest.mark.parametrize("name,floor", [("lenet5-classic", 0.95), ("lenet5-classic-fc", 0.95),
                                        ("lenet5-relu", 0.95)])
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


def write_idx(path, array):
    """A raw IDX file of uint8 ``array``."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def random_mnist(tmp_path_factory):
    """A data folder in MNIST's format holding 20 seeded random images per split."""
    folder = tmp_path_factory.mktemp("random-mnist")
    rng = np.random.default_rng(4)
    for images, labels in FILES.values():
        write_idx(folder / images, rng.integers(0, 256, (20, 28, 28)))
        write_idx(folder / labels, rng.integers(0, 10, 20))
    return folder


def run_process(*args, cwd):
    """The installed command line in a fresh interpreter, as a user runs it: no data folder,
    an empty cache in ``cwd`` and no network."""
    command = [sys.executable, "-c", "from hwlenet.cli import main; main()", *map(str, args)]
    environment = {key: value for key, value in os.environ.items() if key != "HWLENET_DATA"}
    environment.update({"HOME": str(cwd), "XDG_CACHE_HOME": str(cwd / "cache"),
                        "HWLENET_MIRRORS": ""})
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def config_file(folder, layers):
    path = folder / "config.json"
    path.write_text(json.dumps({"layers": layers}))
    return path


@pytest.mark.parametrize("args,message", [
    (["evaluate", "nosuchmodel", "--data-dir", "."], "not a file nor a shipped model"),
    (["evaluate", "lenet5-relu", "--data-dir", "nowhere"], "could not download"),
    (["evaluate", "bad.pt", "--data-dir", "."], "not a readable checkpoint"),
    (["quantize", "--bits", "0", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--bits", "33", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--act-bits", "1", "--out", "q.npz"], "--act-bits must be"),
    (["quantize", "--calib", "0", "--out", "q.npz"], "'--calib': 0 is not in the range"),
    (["quantize", "--config", "missing.json", "--out", "q.npz"], "cannot read config"),
    (["quantize", "lenet5-relu", "--config", {"fc9": {"weight": {"width": 4}}}, "--data-dir",
      "MNIST", "--out", "q.npz"], "config.json: names layer 'fc9'"),
    (["quantize", "lenet5-relu", "--config", {"out": {"output": {"frac": -100}}}, "--data-dir",
      "MNIST", "--out", "q.npz"], "bits; at most 64 are supported"),
    (["quantize", "lenet5-relu", "--config", {"out": {"output": {"frac": -MAX_FRAC - 1}}},
      "--out", "q.npz"], f"frac must be an integer from {-MAX_FRAC} to {MAX_FRAC}"),
    (["quantize", "lenet5-classic", "--config", {"c1": {"bias": {"frac": -70}}}, "--data-dir",
      "MNIST", "--out", "q.npz"], "is outside 0..64"),
    (["simulate", "missing.npz"], "no such artifact"),
    (["simulate", "bad.npz"], "not a quantized artifact"),
])
def test_bad_input_gives_one_line_error(tmp_path, random_mnist, args, message):
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    (tmp_path / "bad.npz").write_bytes(bytes(range(256)))
    args = [config_file(tmp_path, arg) if isinstance(arg, dict) else
            random_mnist if arg == "MNIST" else arg for arg in args]
    result = run_process(*args, cwd=tmp_path)
    assert result.returncode == EXIT_INPUT_ERROR, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if not line.startswith("data: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0]


@pytest.mark.parametrize("args,message", [
    (["evaluate", "lenet5-relu", "--limit", "0"], "Invalid value for '--limit'"),
    (["train", "--epochs", "0", "--out", "m.pt"], "Invalid value for '--epochs'"),
    (["simulate"], "Missing argument 'QMODEL'"),
    (["nosuchcommand"], "No such command"),
])
def test_usage_errors_are_one_error_line(tmp_path, args, message):
    """Click's usage errors: exit status 2 and exactly one line, with a pointer to --help."""
    result = run_process(*args, cwd=tmp_path)
    assert result.returncode == EXIT_INPUT_ERROR
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "--help" in lines[0] or "No such command" in lines[0]


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
    assert payload["output_rule"] == "argmax" and payload["output"] == "logits"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_classic_reports_rbf_penalties(tmp_path, data_dir):
    """The classic model's artifact ends in the RBF layer: quantize says so, simulate reports
    penalties and the argmin rule, and 8 bits stay within 0.1 point of float on 300 images."""
    artifact, report = tmp_path / "q.npz", tmp_path / "s.json"
    result = run("quantize", "lenet5-classic", "--calib", 200, "--data-dir", data_dir,
                 "--out", artifact)
    assert result.exit_code == 0, result.output
    assert "out  RBF: 10 codes of 84, weights -2c s3.0" in result.output
    assert "class = argmin" in result.output
    result = run("simulate", artifact, "--data-dir", data_dir, "--limit", 300, "--json", report)
    assert result.exit_code == 0, result.output
    assert "output: RBF penalties P = 84*2^6 - 2 c.X (s16.6" in result.output
    payload = json.loads(report.read_text())
    assert payload["output_rule"] == "argmin" and payload["output"] == "penalties"
    assert payload["fixed_accuracy"] >= payload["float_accuracy"] - 0.001


def test_train_tiny(tmp_path, data_dir):
    out = tmp_path / "m.pt"
    result = run("train", "--arch", "relu", "--epochs", 1, "--data-dir", data_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "test accuracy" in result.output


def test_help_exits_0_and_lists_library_choices():
    from hwlenet.models import ARCHITECTURES
    from hwlenet.quant.fixed import ROUNDING_MODES
    from hwlenet.verify.cosim import SIMULATORS

    assert run("--help").exit_code == 0
    train_help = run("train", "--help").output
    assert all(arch in train_help for arch in ARCHITECTURES)
    assert all(mode in run("quantize", "--help").output for mode in ROUNDING_MODES)
    assert all(name in run("cosim", "--help").output for name in SIMULATORS)


def test_every_command_says_where_the_images_came_from(tmp_path):
    """No data folder, no cache, no network: the embedded sample, said on stderr."""
    result = run_process("evaluate", "lenet5-relu", "--limit", 50, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"data: 50 test images from the embedded sample ({tmp_path / 'cache' / 'hwlenet' / 'mnist'}"
        " is empty and downloading is off)"]
    result = run_process("quantize", "lenet5-relu", "--out", "q.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"data: {SAMPLE_TRAIN_IMAGES} training images from the "
                                    "embedded sample")
    assert f"calibrated on {SAMPLE_TRAIN_IMAGES} training images" in result.stdout


def test_named_folder_is_said(tmp_path, random_mnist):
    result = run_process("evaluate", "lenet5-relu", "--data-dir", random_mnist, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"data: 20 test images from --data-dir {random_mnist}"]


def report_of(**changes):
    report = {"simulator": "verilator", "images": 0, "mismatches": 1, "bit_exact": False,
              "cycles_per_image": None, "analytic_cycles_per_image": 7942.0, "cycles": 0,
              "predicted_cycles": 9000, "images_per_second": None, "wave": None,
              "coverage": None, "first_mismatch": {"image": 0, "layer": "hang", "element": 0,
                                                   "expected": 0, "actual": 0, "kind": "hang",
                                                   "cycle": 20000},
              "hang": {"image": 0, "last_layer": "c3", "cycle": 20000}}
    report.update(changes)
    return report


@pytest.mark.parametrize("changes", [{}, {"images": 3, "seconds": 0.0}], ids=["first", "later"])
def test_hung_design_is_reported_not_crashed(tmp_path, monkeypatch, changes):
    """A design that hangs (no cycles per image, no speed) is a mismatch, exit 1, and its
    report is printed, never a crash formatting None."""
    import hwlenet.verify.cosim as cosim_module

    report = report_of(**changes)
    monkeypatch.setattr(cosim_module, "read_export", lambda directory: {"vectors": 3})
    monkeypatch.setattr(cosim_module, "require_tools", lambda simulator: None)
    monkeypatch.setattr(cosim_module, "run_cosim", lambda *args, **kwargs: report)
    result = run("cosim", tmp_path, "--json", tmp_path / "c.json")
    assert result.exit_code == EXIT_MISMATCH, result.output
    assert "MISMATCH" in result.output and "hang: no result for image 0" in result.output
    assert json.loads((tmp_path / "c.json").read_text())["hang"]["last_layer"] == "c3"
    lines = cosim_lines(report)
    assert ("n/a" in lines[0]) == bool(changes)
