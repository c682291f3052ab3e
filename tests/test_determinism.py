"""Generated files are deterministic: ``quantize`` and ``emit-verilog`` run twice, in fresh
processes, give byte-identical files."""

import hashlib
import os
import subprocess
import sys

import pytest

ENTRY = "from hwlenet.cli import main; main()"


def run(tmp_path, *args):
    environment = {key: value for key, value in os.environ.items() if key != "HWLENET_DATA"}
    environment["HWLENET_MIRRORS"] = ""  # never the network
    result = subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


def digests(folder):
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("model", ["lenet5-classic", "lenet5-relu"])
def test_quantize_and_emit_twice_are_byte_identical(tmp_path, model):
    outputs = []
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        folder.mkdir()
        run(folder, "quantize", model, "--bits", 8, "--calib", 200, "--out", "q.npz",
            "--json", "q.json")
        run(folder, "emit-verilog", "q.npz", "--out", "rtl", "--vectors", 3, "--array", "4x8",
            "--json", "e.json")
        outputs.append(digests(folder))
    first, second = outputs
    assert {"q.npz", "q.json", "e.json", "rtl/manifest.json", "rtl/hwlenet_top.v",
            "rtl/model.npz", "rtl/vectors/logits.bin"} <= set(first)
    assert first == second
