"""End to end: exported Verilog co-simulated against the numba simulator's vectors."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.cli import main
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl import cosim as cosim_module
from hwlenet.rtl.cosim import run_cosim
from hwlenet.rtl.emit import emit_verilog
from hwlenet.rtl.plan import plan_hardware

needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None,
                                     reason="needs Verilator (make venv installs it as root)")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="needs Icarus Verilog (make venv installs it as root)")
VECTORS = 200


@pytest.fixture(scope="module")
def exports(tmp_path_factory, qmodels, test_split):
    """Both shipped models at 8 bits, exported with 200 test vectors on an 8x8 array."""
    folders = {}
    for name, qmodel in qmodels.items():
        folder = tmp_path_factory.mktemp(name)
        emit_verilog(qmodel, folder, 8, 8, test_split.images[:VECTORS])
        folders[name] = folder
    return folders


@needs_verilator
@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_verilator_200_images_bit_exact(exports, name):
    report = run_cosim(exports[name], "verilator", VECTORS, jobs=2)
    assert report["images"] == VECTORS and report["mismatches"] == 0 and report["bit_exact"]
    assert report["cycles"] == report["predicted_cycles"]
    assert abs(report["steady_state_error"]) < 0.01


@needs_verilator
def test_make_sim_runs_on_its_own(exports):
    folder = exports["lenet5-classic"]
    completed = subprocess.run(["make", "-C", str(folder), "sim", "IMAGES=24"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "PASS: 24 images bit-exact" in completed.stdout


@needs_verilator
def test_lint_passes_with_documented_waivers(exports):
    completed = subprocess.run(["make", "-C", str(exports["lenet5-relu"]), "lint"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]


@needs_icarus
def test_icarus_agrees(exports):
    report = run_cosim(exports["lenet5-classic"], "icarus", 2)
    assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]


def test_amaranth_simulator_agrees(exports):
    report = run_cosim(exports["lenet5-relu"], "amaranth", 1)
    assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]


def corrupt_weight(folder, qmodel, layer_name, lane=0, k=0):
    """Flip every bit of one weight in the exported design's weight ROM."""
    plan = plan_hardware(qmodel, 8, 8)
    _, bases = plan.weight_words()
    job = next(job for job in plan.jobs if job.layer.name
               == layer_name)
    address = bases[job.index] + k
    design = folder / "hwlenet_top.v"
    text = design.read_text()
    pattern = re.compile(rf"(weight_rom\[{address}\] = (\d+)'h)([0-9a-f]+);")
    match = pattern.search(text)
    bits = int(match.group(2))
    word = int(match.group(3), 16) ^ (((1 << plan.weight_width) - 1) << (lane * plan.weight_width))
    design.write_text(pattern.sub(lambda m: f"{m.group(1)}{word:0{bits // 4}x};", text, count=1))


@needs_verilator
@pytest.mark.parametrize("layer,diverges", [("c3", "p2"), ("fc1", "fc1")])
def test_fault_injection_names_first_diverging_layer(tmp_path, exports, qmodels, layer,
                                                     diverges):
    folder = tmp_path / "faulty"
    shutil.copytree(exports["lenet5-relu"], folder, ignore=shutil.ignore_patterns("obj_dir"))
    corrupt_weight(folder, qmodels["lenet5-relu"], layer)
    result = CliRunner().invoke(main, ["cosim", str(folder), "--images", "8", "--json",
                                       str(tmp_path / "c.json")])
    assert result.exit_code == 1
    report = json.loads((tmp_path / "c.json").read_text())
    assert not report["bit_exact"] and report["mismatches"] > 0
    assert report["first_mismatch"]["layer"] == diverges
    assert f"layer {diverges}" in result.output


@needs_verilator
@pytest.mark.parametrize("name,bits,array", [("lenet5-classic", 6, (4, 8)),
                                             ("lenet5-relu", 10, (8, 4))])
def test_other_array_sizes_and_widths(tmp_path, train_split, test_split, name, bits, array):
    qmodel = quantize_model(resolve_model(name)[0], train_split.images[:500], bits, bits)
    emit_verilog(qmodel, tmp_path, *array, test_split.images[:12])
    report = run_cosim(tmp_path, "verilator")
    assert report["bit_exact"] and report["images"] == 12
    assert report["cycles"] == report["predicted_cycles"]


def test_export_is_deterministic(tmp_path, qmodels, test_split):
    for folder in ("a", "b"):
        emit_verilog(qmodels["lenet5-classic"], tmp_path / folder, 8, 8, test_split.images[:3])
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert {str(p) for p in files} >= {"hwlenet_top.v", "tb.v", "Makefile", "manifest.json",
                                       "vectors/pixels.hex", "vectors/s2.hex", "model.npz"}
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path


def test_manifest_and_vectors(exports, qmodels, test_split):
    folder = exports["lenet5-relu"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["vectors"] == VECTORS and manifest["array"] == {"rows": 8, "cols": 8}
    assert [row["name"] for row in manifest["analytic"]["layers"]] == ["c1", "c3", "fc1",
                                                                        "fc2", "out"]
    assert manifest["analytic"]["utilization"] >= 0.70
    pixels = [int(line, 16) for line in (folder / "vectors/pixels.hex").read_text().split()]
    np.testing.assert_array_equal(np.array(pixels).reshape(-1, 28, 28),
                                  test_split.images[:VECTORS])


def test_missing_simulator_is_a_clear_error(exports, monkeypatch):
    monkeypatch.setattr(cosim_module, "find_tool", lambda tool: None)
    with pytest.raises(HwlenetError, match="apt-get install -y verilator"):
        run_cosim(exports["lenet5-relu"], "verilator", 1)


def test_cosim_bad_folders(tmp_path, qmodels, exports):
    with pytest.raises(HwlenetError, match="not an hwlenet export"):
        run_cosim(tmp_path)
    emit_verilog(qmodels["lenet5-relu"], tmp_path / "empty")
    with pytest.raises(HwlenetError, match="holds no test vectors"):
        run_cosim(tmp_path / "empty")
    with pytest.raises(HwlenetError, match="--images must be from 1 to 200"):
        run_cosim(exports["lenet5-relu"], images=201)


def test_emit_verilog_cli_rejects_bad_array(tmp_path):
    result = CliRunner().invoke(main, ["emit-verilog", "q.npz", "--out", str(tmp_path),
                                       "--array", "8x6"])
    assert result.exit_code == 1
    assert "array cols must be a power of two" in result.output


def test_emit_verilog_cli_rejects_too_many_vectors(tmp_path, data_dir, qmodels):
    from hwlenet.quant.artifact import save_artifact

    save_artifact(qmodels["lenet5-relu"], tmp_path / "q.npz")
    result = CliRunner().invoke(main, ["emit-verilog", str(tmp_path / "q.npz"), "--out",
                                       str(tmp_path / "out"), "--vectors", "10001",
                                       "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "exceeds the 10000 test images" in result.output


def test_streams_tolerate_back_pressure(exports):
    """Pixels arrive with random gaps and results are accepted at random: still bit-exact."""
    from hwlenet.rtl.amaranth_bench import run_amaranth_bench
    from hwlenet.rtl.cosim import read_export

    folder = exports["lenet5-relu"]
    report = run_amaranth_bench(folder, read_export(folder), 2, stall_seed=7)
    assert report["images"] == 2 and report["mismatches"] == 0


def test_trace_port_is_optional(qmodels):
    from amaranth.back import verilog

    from hwlenet.rtl.accelerator import LeNetAccelerator

    plan = plan_hardware(qmodels["lenet5-relu"], 4, 4)
    bare = LeNetAccelerator(plan=plan, trace=False)
    assert "trace" not in bare.signature.members
    assert "trace" not in verilog.convert(bare, name="top", emit_src=False).split(");")[0]
