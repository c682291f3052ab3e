"""End to end: exported Verilog co-simulated against the numba simulator's vectors, and the
faults the benches must catch."""

import dataclasses
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from mutants import (DroppedWrite, DuplicateWrite, LostDone, ReadAlways, mutant_verilog,
                     mutated)

from hwlenet import HwlenetError
from hwlenet.cli import main
from hwlenet.rtl.accelerator import LeNetAccelerator
from hwlenet.rtl.plan import plan_hardware
from hwlenet.sim import kernels, simulate
from hwlenet.verify import cosim as cosim_module
from hwlenet.verify.amaranth_bench import run_amaranth_bench
from hwlenet.verify.cosim import build_bench, read_export, run_bench, run_cosim
from hwlenet.verify.emit import emit_verilog
from hwlenet.verify.faultcheck import run_faultcheck
from hwlenet.verify.vectors import read_vectors

VECTORS = 200


@pytest.fixture(scope="module")
def exports(tmp_path_factory, qmodels, vector_images):
    """Both shipped models at 8 bits, exported with 200 test vectors on an 8x8 array."""
    folders = {}
    for name, qmodel in qmodels.items():
        folder = tmp_path_factory.mktemp(name)
        emit_verilog(qmodel, folder, 8, 8, vector_images[:VECTORS])
        folders[name] = folder
    return folders


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_verilator_200_images_bit_exact(exports, name):
    report = run_cosim(exports[name], "verilator", VECTORS, jobs=2)
    assert report["images"] == VECTORS and report["mismatches"] == 0 and report["bit_exact"]
    assert report["cycles"] == report["predicted_cycles"]
    assert abs(report["steady_state_error"]) < 0.01


def test_exported_weight_pieces_hold_the_words(exports, qmodels):
    """Every word of the weight ROM is in the exported Verilog where :meth:`RomImage.locate`
    says (the rule the bench's ROM faults and these tests' flips use), lanes packed low first,
    and the pieces hold nothing else."""
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    weights = plan.weight_rom()
    assert weights.piece_depth == 512 and len(weights.memory_paths) == -(-weights.depth // 512)
    text = (exports["lenet5-relu"] / "hwlenet_top.v").read_text()
    found = {(name, int(index)): int(value, 16 if base == "h" else 10) for name, index, base, value
             in re.findall(r"\b(piece_\d+)\[(\d+)\] = \d+'([hd])([0-9a-f]+);", text)}
    mask = (1 << weights.lane_width) - 1
    expected = {}
    for address, word in enumerate(weights.words):
        path, local = weights.locate(address)
        expected[(path.split(".")[-1], local)] = sum(
            (int(value) & mask) << (lane * weights.lane_width) for lane, value in enumerate(word))
    assert found == expected


def test_make_sim_runs_on_its_own(exports):
    folder = exports["lenet5-classic"]
    completed = subprocess.run(["make", "-C", str(folder), "sim", "IMAGES=24"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "PASS: 24 images bit-exact" in completed.stdout


def test_lint_passes_with_documented_waivers(exports):
    completed = subprocess.run(["make", "-C", str(exports["lenet5-relu"]), "lint"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_icarus_agrees(exports, capsys):
    report = run_cosim(exports["lenet5-classic"], "icarus", 2, jobs=1, progress=True)
    assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]
    assert "cosim (icarus): 100%" in capsys.readouterr().err


def test_amaranth_simulator_agrees(exports, capsys):
    report = run_cosim(exports["lenet5-relu"], "amaranth", 1, progress=True)
    assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]
    assert "1/1" in capsys.readouterr().err


def test_bench_reports_progress_while_it_runs(exports):
    """The bench prints a progress line after every ``count // PROGRESS_LINES`` (at least 1)
    checked images but the last, read while it runs; the verdict is the same."""
    folder = exports["lenet5-relu"]
    build_bench(folder, "verilator")
    seen = []
    part = run_bench(folder, "verilator", 3, 6, on_progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]
    assert part == run_bench(folder, "verilator", 3, 6)


def _fake_bench(folder, script):
    bench = folder / cosim_module.BENCHES["verilator"]["plain"]
    bench.parent.mkdir(parents=True)
    bench.write_text("#!/bin/sh\n" + script)
    bench.chmod(0o755)


def test_progress_run_is_stopped_at_its_timeout(tmp_path, monkeypatch):
    _fake_bench(tmp_path, "echo 'PROGRESS images=1'\nexec sleep 30\n")
    monkeypatch.setattr(cosim_module, "STARTUP_SECONDS", 1.0)
    monkeypatch.setitem(cosim_module.SECONDS_PER_IMAGE, "verilator", 0.0)
    seen = []
    with pytest.raises(HwlenetError, match="did not finish within 1 s and was stopped"):
        run_bench(tmp_path, "verilator", 0, 4, on_progress=seen.append)
    assert seen == [1]


def test_progress_run_parses_its_verdict_and_errors(tmp_path):
    _fake_bench(tmp_path, "echo 'PROGRESS images=2' >&2\n"
                          "echo 'RESULT images=4 mismatches=0 cycles=40'\n")
    seen = []
    part = run_bench(tmp_path, "verilator", 0, 4, on_progress=seen.append)
    assert seen == [2] and (part["images"], part["mismatches"], part["cycles"]) == (4, 0, 40)
    (tmp_path / cosim_module.BENCHES["verilator"]["plain"]).write_text("#!/bin/sh\necho boom\n")
    with pytest.raises(HwlenetError, match="ended without a verdict: boom"):
        run_bench(tmp_path, "verilator", 0, 4, on_progress=seen.append)


def test_amaranth_refuses_an_edited_export(tmp_path, exports):
    folder = tmp_path / "edited"
    shutil.copytree(exports["lenet5-relu"], folder, ignore=shutil.ignore_patterns("obj_dir*"))
    design = folder / "hwlenet_top.v"
    design.write_text(design.read_text() + "\n// edited\n")
    with pytest.raises(HwlenetError, match="not what this hwlenet elaborates"):
        run_cosim(folder, "amaranth", 1)


def _copy(exports, name, tmp_path):
    folder = tmp_path / "faulty"
    shutil.copytree(exports[name], folder, ignore=shutil.ignore_patterns("obj_dir*", "*.vvp"))
    return folder


def _flip_rom_word(folder, image, address, mask):
    """XOR ``mask`` into word ``address`` of the ROM of :class:`RomImage` ``image`` in the
    exported Verilog."""
    design = folder / "hwlenet_top.v"
    text = design.read_text()
    path, local = image.locate(address)
    memory = path.split(".")[-1]
    pattern = re.compile(rf"(\b{memory}\[{local}\] = (\d+)')([hd])([0-9a-f]+);")
    match = pattern.search(text)
    assert match, f"{path}[{local}] not found"
    base = 16 if match.group(3) == "h" else 10
    word = int(match.group(4), base) ^ mask
    design.write_text(pattern.sub(lambda m: f"{m.group(1)}h{word:x};", text, count=1))


def _cosim_cli(folder, tmp_path, images=8):
    result = CliRunner().invoke(main, ["cosim", str(folder), "--images", str(images),
                                       "--json", str(tmp_path / "c.json")])
    report = json.loads((tmp_path / "c.json").read_text())
    return result, report


def _observable_weight_flip(qmodel, layer_name, stored_name, images, rows):
    """A weight of ``layer_name`` in the first row tile whose every bit flipped changes
    ``stored_name``'s output for one of ``images`` in the bit-exact simulator: ``(lane, k)``."""
    reference = simulate(qmodel, images, trace=True).trace[stored_name]
    layer = qmodel.layer(layer_name)
    matrix = layer.weight.reshape(layer.weight.shape[0], -1)
    mask = (1 << layer.weight_format.width) - 1
    for k in range(matrix.shape[1]):
        for lane in range(min(rows, matrix.shape[0])):
            original = matrix[lane, k]
            flipped = ((int(original) & mask) ^ mask)
            flipped -= (flipped >> (layer.weight_format.width - 1)) << layer.weight_format.width
            matrix[lane, k] = flipped
            try:
                changed = simulate(qmodel, images, trace=True).trace[stored_name]
            finally:
                matrix[lane, k] = original
            if not np.array_equal(changed, reference):
                return lane, k
    raise AssertionError(f"no observable weight flip in {layer_name}")


@pytest.mark.parametrize("layer,diverges", [("c3", "p2"), ("fc1", "fc1")])
def test_wrong_weight_names_first_diverging_layer(tmp_path, exports, qmodels, vector_images,
                                                  layer, diverges):
    qmodel = qmodels["lenet5-relu"]
    folder = _copy(exports, "lenet5-relu", tmp_path)
    plan = plan_hardware(qmodel, 8, 8)
    weights = plan.weight_rom()
    lane, k = _observable_weight_flip(qmodel, layer, diverges, vector_images[:8], plan.rows)
    _flip_rom_word(folder, weights, weights.base(layer) + k,
                   ((1 << weights.lane_width) - 1) << (lane * weights.lane_width))
    result, report = _cosim_cli(folder, tmp_path)
    assert result.exit_code == 1
    assert not report["bit_exact"] and report["mismatches"] > 0
    assert report["first_mismatch"]["layer"] == diverges
    assert report["first_mismatch"]["kind"] == "value"
    assert f"layer {diverges}" in result.output


def _indexed_table_entry(qmodel, layer_name, image):
    """The table index that the first output of ``layer_name`` uses for ``image``."""
    layers = qmodel.layers
    position = next(i for i, layer in enumerate(layers) if layer.name == layer_name)
    x = image.reshape(1, *layers[0].in_shape).astype(np.int64)
    for layer in layers[:position]:
        x = kernels.run_layer(layer, x)
    layer = layers[position]
    index_layer = dataclasses.replace(layer, activation="none", output_format=layer.pre_format,
                                      lut=None)
    return int(kernels.run_layer(index_layer, x).ravel()[0])


def test_wrong_table_entry_is_caught(tmp_path, exports, qmodels, vector_images):
    qmodel = qmodels["lenet5-classic"]
    plan = plan_hardware(qmodel, 8, 8)
    tables = plan.table_rom()
    index = _indexed_table_entry(qmodel, "c5", vector_images[0])
    address = tables.base("c5") + index - qmodel.layer("c5").pre_format.min_int
    folder = _copy(exports, "lenet5-classic", tmp_path)
    _flip_rom_word(folder, tables, address, 1 << (tables.lane_width - 2))
    result, report = _cosim_cli(folder, tmp_path, images=1)
    assert result.exit_code == 1
    assert report["first_mismatch"]["layer"] == "c5"
    assert report["first_mismatch"]["image"] == 0


@pytest.mark.parametrize("mutant,kind,layer", [(DroppedWrite, "missing", "fc1"),
                                               (DuplicateWrite, "duplicate", "fc1")])
def test_scoreboard_catches_write_faults(tmp_path, exports, qmodels, mutant, kind, layer):
    folder = _copy(exports, "lenet5-relu", tmp_path)
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    (folder / "hwlenet_top.v").write_text(mutant_verilog(plan, mutant))
    result, report = _cosim_cli(folder, tmp_path)
    assert result.exit_code == 1
    first = report["first_mismatch"]
    assert (first["kind"], first["layer"]) == (kind, layer)
    assert first["element"] == mutant.channel


@pytest.mark.parametrize("mutant,kind", [(DroppedWrite, "missing"),
                                         (DuplicateWrite, "duplicate")])
def test_amaranth_scoreboard_catches_write_faults(exports, qmodels, mutant, kind):
    folder = exports["lenet5-relu"]
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    with mutated(mutant):
        report = run_amaranth_bench(folder, read_export(folder), 1, stop_at_first=True,
                                    design=LeNetAccelerator(plan=plan), plan=plan)
    first = report["first_mismatch"]
    assert report["mismatches"] > 0
    assert (first["kind"], first["layer"], first["element"]) == (kind, "fc1", mutant.channel)


def test_a_read_meeting_a_write_is_a_collision(tmp_path, exports, qmodels):
    """The feature buffers' block RAMs leave such a read undefined (``no_rw_check``): both
    benches report it, naming the buffer."""
    folder = _copy(exports, "lenet5-relu", tmp_path)
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    (folder / "hwlenet_top.v").write_text(mutant_verilog(plan, ReadAlways))
    result, report = _cosim_cli(folder, tmp_path, images=1)
    assert result.exit_code == 1
    assert (report["first_mismatch"]["kind"], report["first_mismatch"]["layer"]) == (
        "collision", "mid")
    with mutated(ReadAlways):
        report = run_amaranth_bench(folder, read_export(folder), 1, stop_at_first=True,
                                    design=LeNetAccelerator(plan=plan), plan=plan)
    assert (report["first_mismatch"]["kind"], report["first_mismatch"]["layer"]) == (
        "collision", "mid")


def test_hung_design_names_image_and_last_layer(tmp_path, exports, qmodels):
    folder = _copy(exports, "lenet5-relu", tmp_path)
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    (folder / "hwlenet_top.v").write_text(mutant_verilog(plan, LostDone))
    result, report = _cosim_cli(folder, tmp_path, images=1)
    assert result.exit_code == 1
    assert report["hang"] == {"image": 0, "last_layer": "p2", "cycle": report["hang"]["cycle"]}
    assert "hang" in result.output and "p2" in result.output


def test_wave_of_a_failing_run(tmp_path, exports, qmodels):
    folder = _copy(exports, "lenet5-relu", tmp_path)
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    (folder / "hwlenet_top.v").write_text(mutant_verilog(plan, DroppedWrite))
    report = run_cosim(folder, "icarus", 1, wave=True)
    wave = report["wave"]
    assert not report["bit_exact"] and wave["path"].endswith("wave.vcd")
    text = open(wave["path"]).read()
    assert "$enddefinitions" in text and "pixels__ready" in text
    assert wave["open"] == f"gtkwave {wave['path']}"


def test_export_is_deterministic(tmp_path, qmodels, vector_images):
    for folder in ("a", "b"):
        emit_verilog(qmodels["lenet5-classic"], tmp_path / folder, 8, 8, vector_images[:3])
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert {str(p) for p in files} >= {"hwlenet_top.v", "tb.v", "Makefile", "manifest.json",
                                       "vectors/pixels.bin", "vectors/s2.bin", "model.npz"}
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path


def test_manifest_and_vectors(exports, qmodels, vector_images):
    folder = exports["lenet5-relu"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["vectors"] == VECTORS and manifest["array"] == {"rows": 8, "cols": 8}
    assert [row["name"] for row in manifest["analytic"]["layers"]] == ["c1", "c3", "fc1",
                                                                        "fc2", "out"]
    assert manifest["analytic"]["utilization"] >= 0.70
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    for images in (1, 7, 8, 9, 17, VECTORS):
        assert cosim_module.predicted_cycles(manifest, images) == plan.predicted_cycles(images)
    assert [rom["name"] for rom in manifest["memories"]] == ["weight_rom", "bias_rom"]
    pixels = np.fromfile(folder / "vectors/pixels.bin", np.uint8)
    np.testing.assert_array_equal(pixels.reshape(-1, 28, 28), vector_images[:VECTORS])
    files = {entry["name"]: entry for entry in manifest["vector_files"]}
    logits = simulate(qmodels["lenet5-relu"], vector_images[:VECTORS]).logits
    np.testing.assert_array_equal(read_vectors(folder, files["logits"], VECTORS), logits)


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
                                       "--array", "8x65"])
    assert result.exit_code == 2
    assert "array cols must be from 1 to 64, not 65" in result.output


def test_emit_verilog_cli_rejects_too_many_vectors(tmp_path, data_dir, qmodels):
    from hwlenet.quant.artifact import save_artifact

    save_artifact(qmodels["lenet5-relu"], tmp_path / "q.npz")
    result = CliRunner().invoke(main, ["emit-verilog", str(tmp_path / "q.npz"), "--out",
                                       str(tmp_path / "out"), "--vectors", "10001",
                                       "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "exceeds the 10000 test images" in result.output


def test_streams_tolerate_back_pressure(exports, qmodels):
    """Pixels arrive with random gaps and results are accepted at random: still bit-exact."""
    folder = exports["lenet5-relu"]
    plan = plan_hardware(qmodels["lenet5-relu"], 8, 8)
    report = run_amaranth_bench(folder, read_export(folder), 2, stall_seed=7,
                                design=LeNetAccelerator(plan=plan), plan=plan)
    assert report["images"] == 2 and report["mismatches"] == 0


def test_no_trace_export_checks_results_and_catches_a_wrong_weight(tmp_path, qmodels,
                                                                     vector_images):
    """``--no-trace``: a design without the trace port, whose bench checks results only; it
    is bit-exact, still catches a wrong weight (on the logits), and faultcheck refuses it."""
    qmodel = qmodels["lenet5-relu"]
    folder = tmp_path / "bare"
    result = CliRunner().invoke(main, ["emit-verilog", str(tmp_path / "q.npz"), "--out",
                                       str(folder)])
    assert result.exit_code != 0  # no artifact there yet: a clear error, nothing written
    assert not folder.exists()
    manifest = emit_verilog(qmodel, folder, 4, 4, vector_images[:6], trace=False)
    assert manifest["trace"] is False and manifest["traced_layers"] == []
    ports = (folder / "hwlenet_top.v").read_text().split(");")[0]
    assert "trace" not in ports and "pixels__payload" in ports
    for simulator, count in (("verilator", 6), ("amaranth", 1)):
        report = run_cosim(folder, simulator, count)  # one process per CPU by default
        assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]
        assert report["jobs"] == min(len(os.sched_getaffinity(0)), count)
    plan = plan_hardware(qmodel, 4, 4)
    weights = plan.weight_rom()
    lane, k = _observable_weight_flip(qmodel, "out", "out", vector_images[:6], plan.rows)
    _flip_rom_word(folder, weights, weights.base("out") + k,
                   ((1 << weights.lane_width) - 1) << (lane * weights.lane_width))
    report = run_cosim(folder, "verilator", 6)
    assert not report["bit_exact"]
    assert report["first_mismatch"]["layer"] in ("logits", "class")
    with pytest.raises(HwlenetError, match="--no-trace"):
        run_faultcheck(folder, faults=1)


def test_verilator_wave_of_a_short_run(exports):
    report = run_cosim(exports["lenet5-relu"], "verilator", 1, wave=True)
    assert report["bit_exact"]
    completed = subprocess.run(["fst2vcd", report["wave"]["path"]], capture_output=True,
                               text=True)
    assert completed.returncode == 0
    assert "$enddefinitions" in completed.stdout and "results__valid" in completed.stdout
