import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from hwlenet.cli import main
from hwlenet.data import FILES


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
    """The installed command line in a fresh interpreter, as a user runs it."""
    command = [sys.executable, "-c", "from hwlenet.cli import main; main()", *map(str, args)]
    environment = {key: value for key, value in os.environ.items() if key != "HWLENET_DATA"}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def config_file(folder, layers):
    path = folder / "config.json"
    path.write_text(json.dumps({"layers": layers}))
    return path


@pytest.mark.parametrize("args,message", [
    (["evaluate", "nosuchmodel", "--data-dir", "."], "not a file nor a shipped model"),
    (["evaluate", "lenet5-relu"], "no data directory: pass --data-dir"),
    (["evaluate", "bad.pt", "--data-dir", "."], "not a readable checkpoint"),
    (["quantize", "--bits", "0", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--bits", "33", "--out", "q.npz"], "--bits must be an integer from 2 to 32"),
    (["quantize", "--act-bits", "1", "--out", "q.npz"], "--act-bits must be"),
    (["quantize", "--calib", "0", "--out", "q.npz"], "--calib must be at least 1"),
    (["quantize", "--config", "missing.json", "--out", "q.npz"], "cannot read config"),
    (["quantize", "lenet5-relu", "--config", {"fc9": {"weight": {"width": 4}}}, "--data-dir",
      "MNIST", "--out", "q.npz"], "config names layer 'fc9'"),
    (["quantize", "lenet5-relu", "--config", {"out": {"output": {"frac": -200}}}, "--data-dir",
      "MNIST", "--out", "q.npz"], "bits; at most 64 are supported"),
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
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0]


@pytest.mark.parametrize("args,message", [
    (["evaluate", "lenet5-relu", "--limit", "0"], "Invalid value for '--limit'"),
    (["train", "--epochs", "0", "--out", "m.pt"], "Invalid value for '--epochs'"),
    (["simulate"], "Missing argument 'QMODEL'"),
    (["nosuchcommand"], "No such command"),
])
def test_usage_errors_end_with_one_error_line(tmp_path, args, message):
    """Click's usage errors: exit status 2, the usage and a hint, then one error line."""
    result = run_process(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert result.stderr.splitlines()[-1] == errors[0]


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


def test_train_tiny(tmp_path, data_dir):
    out = tmp_path / "m.pt"
    result = run("train", "--arch", "relu", "--epochs", 1, "--data-dir", data_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "test accuracy" in result.output
