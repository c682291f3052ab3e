"""The Python API exported from ``hwlenet``, and the README's ten-line example, run as is."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hwlenet
from hwlenet.tools import find_tool

README = Path(__file__).parents[1] / "README.md"
API = ("load_mnist", "load_model", "quantize", "simulate", "emit_verilog", "cosim",
       "load_artifact", "save_artifact", "HwlenetError")


def readme_example(text):
    """The README's Python block that starts with ``import hwlenet``."""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    examples = [block for block in blocks if block.startswith("import hwlenet\n")]
    assert examples, "the README has no ```python block starting with 'import hwlenet'"
    return examples[0]


def test_exports():
    for name in API:
        assert name in hwlenet.__all__ and callable(getattr(hwlenet, name)), name
    with pytest.raises(AttributeError):
        hwlenet.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", ["hwlenet", "hwlenet.cli"])
def test_import_is_light(module):
    """``import hwlenet`` and the command line (so ``hwlenet --help`` and every bad-input error)
    import none of numpy, torch, numba and amaranth: the names load on first use."""
    code = (f"import sys, {module}; print([name for name in ('numpy', 'torch', 'numba', "
            "'amaranth') if name in sys.modules])")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


def test_quantize_and_simulate_agree_with_the_modules(digit_images):
    """The API's quantize and simulate are the library's, with the CLI's defaults."""
    from hwlenet.quant.quantize import quantize_model
    from hwlenet.sim import simulate

    calibration, images = digit_images[0][:200], digit_images[1][:30]
    qmodel = hwlenet.quantize("lenet5-relu", calibration, bits=6)
    direct = quantize_model(hwlenet.load_model("lenet5-relu"), calibration, 6, 6)
    assert qmodel.manifest()["layers"] == direct.manifest()["layers"]
    np.testing.assert_array_equal(hwlenet.simulate(qmodel, images).logits,
                                  simulate(direct, images).logits)
    with pytest.raises(hwlenet.HwlenetError, match="--bits|weight bits"):
        hwlenet.quantize("lenet5-relu", calibration, bits=1)


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    """The README's example, as written, in a fresh interpreter (data as the suite has it)."""
    if find_tool("verilator") is None:
        pytest.skip("needs verilator")
    code = readme_example(README.read_text())
    assert len(code.strip().splitlines()) <= 10
    environment = dict(os.environ, HWLENET_MIRRORS="")  # never the network
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "RTL bit-exact: True" in result.stdout
    accuracy = float(result.stdout.split("fixed-point accuracy ")[1].split()[0])
    assert accuracy >= 0.8
    assert (tmp_path / "q.npz").is_file() and (tmp_path / "rtl" / "manifest.json").is_file()
