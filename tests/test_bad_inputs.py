"""Bad inputs through the real command line, run as a subprocess as a user runs it: each gives
exactly one line ``Error: ...`` on stderr that names the file or option, no traceback, exit
status 2, and writes nothing. A co-simulation mismatch alone exits with 1."""

import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from hwlenet.errors import EXIT_INPUT_ERROR, EXIT_MISMATCH
from hwlenet.tools import find_tool

ENTRY = "from hwlenet.cli import main; main()"


def hwlenet_env(home, **extra):
    """The environment of a user with no data folder, an empty cache and no network."""
    environment = {key: value for key, value in os.environ.items() if key != "HWLENET_DATA"}
    environment.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                        "HWLENET_MIRRORS": ""})
    environment.update(extra)
    return environment


def run_cli(args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(result):
    """The one error line of a failed run (stderr may also hold the one ``data:`` line)."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("data: ")]
    assert len(lines) == 1, result.stderr
    assert len(result.stderr.splitlines()) - len(lines) <= 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.asarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)


def mnist_folder(folder, count=12, seed=0):
    """A data folder in MNIST's format: ``count`` seeded random images per split, raw IDX."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for images, labels in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        write_idx(folder / images, rng.integers(0, 256, (count, 28, 28)))
        write_idx(folder / labels, rng.integers(0, 10, count))
    return folder


def rewrite_npz(source, target, edit):
    """Copy the artifact ``source`` to ``target`` with ``edit(arrays, manifest)`` applied."""
    with np.load(source) as archive:
        arrays = {key: archive[key] for key in archive.files}
    manifest = json.loads(str(arrays.pop("manifest")))
    edit(arrays, manifest)
    np.savez_compressed(target, manifest=np.array(json.dumps(manifest)), **arrays)
    return target


@pytest.fixture(scope="module")
def world(tmp_path_factory, digit_images):
    """A valid checkpoint, artifact and export (two vectors) to damage, and a home."""
    from hwlenet.checkpoint import resolve_model, shipped_path
    from hwlenet.quant.artifact import save_artifact
    from hwlenet.quant.quantize import quantize_model
    from hwlenet.verify.emit import emit_verilog

    root = tmp_path_factory.mktemp("bad-inputs")
    qmodel = quantize_model(resolve_model("lenet5-relu")[0], digit_images[0][:64])
    save_artifact(qmodel, root / "q.npz")
    shutil.copy(shipped_path("lenet5-relu"), root / "model.pt")
    emit_verilog(qmodel, root / "export", 8, 8, digit_images[1][:2])
    (root / "home").mkdir()
    return root


def damaged(world, tmp_path, name, mutate):
    """A copy of ``world/name`` in ``tmp_path``, changed by ``mutate(path)``."""
    source = world / name
    target = tmp_path / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    mutate(target)
    return target


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def edit_json(path, edit):
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def config(tmp_path, layers):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"layers": layers}))
    return path


def empty(path):
    path.write_bytes(b"")
    return path


def export_with(world, tmp_path, mutate):
    return damaged(world, tmp_path, "export", mutate)


def manifest_edit(edit):
    return lambda folder: edit_json(folder / "manifest.json", edit)


def vector_edit(name, change):
    def mutate(folder):
        path = folder / "vectors" / f"{name}.bin"
        change(path)
    return mutate


def _flip_weight_dtype(arrays, manifest):
    arrays["c1.weight"] = arrays["c1.weight"].astype(np.float32)


def _del_key(key):
    return manifest_edit(lambda manifest: manifest.pop(key))


def data_case(change):
    """``--data-dir`` of a valid small folder changed by ``change(folder)``."""
    def build(world, tmp_path):
        folder = mnist_folder(tmp_path / "mnist")
        change(folder)
        return folder
    return build


def _labels_out_of_range(folder):
    write_idx(folder / "t10k-labels-idx1-ubyte", np.full(12, 12))


# Each case: (command-line builder, text the error line must contain). A builder gets the
# module's world folder and the test's tmp_path and returns the arguments.
CASES = {
    # checkpoints
    "checkpoint-missing": (lambda w, t: ["evaluate", t / "none.pt"], "none.pt"),
    "checkpoint-empty": (lambda w, t: ["evaluate", damaged(w, t, "model.pt",
                                                           lambda p: p.write_bytes(b""))],
                         "model.pt"),
    "checkpoint-truncated": (lambda w, t: ["evaluate", damaged(w, t, "model.pt", truncate)],
                             "model.pt"),
    "checkpoint-garbage": (lambda w, t: ["evaluate", damaged(
        w, t, "model.pt", lambda p: p.write_bytes(bytes(range(256)) * 8))], "model.pt"),
    "checkpoint-is-artifact": (lambda w, t: ["evaluate", damaged(w, t, "q.npz", lambda p: 0)],
                               "q.npz"),
    "checkpoint-is-json": (lambda w, t: ["quantize", config(t, {}), "--out", t / "q.npz"],
                           "config.json"),
    "checkpoint-is-folder": (lambda w, t: ["evaluate", t], None),
    # artifacts
    "artifact-missing": (lambda w, t: ["simulate", t / "none.npz"], "none.npz"),
    "artifact-empty": (lambda w, t: ["simulate", damaged(w, t, "q.npz",
                                                         lambda p: p.write_bytes(b""))], "q.npz"),
    "artifact-truncated": (lambda w, t: ["simulate", damaged(w, t, "q.npz", truncate)], "q.npz"),
    "artifact-garbage": (lambda w, t: ["simulate", damaged(
        w, t, "q.npz", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(300)))], "q.npz"),
    "artifact-is-checkpoint": (lambda w, t: ["simulate", damaged(w, t, "model.pt", lambda p: 0)],
                               "model.pt"),
    "artifact-version": (lambda w, t: ["simulate", rewrite_npz(
        w / "q.npz", t / "v.npz", lambda a, m: m.update(version=99))], "v.npz"),
    "artifact-bad-width": (lambda w, t: ["simulate", rewrite_npz(
        w / "q.npz", t / "w.npz", lambda a, m: m["layers"][0]["weight_format"].update(width=1))],
        "w.npz"),
    "artifact-float-weights": (lambda w, t: ["emit-verilog", rewrite_npz(
        w / "q.npz", t / "f.npz", _flip_weight_dtype), "--out", t / "rtl"], "f.npz"),
    "artifact-folder": (lambda w, t: ["emit-verilog", t, "--out", t / "rtl"], None),
    # configs
    "config-missing": (lambda w, t: ["quantize", "--config", t / "none.json", "--out",
                                     t / "q.npz"], "none.json"),
    "config-empty": (lambda w, t: ["quantize", "--config", empty(t / "c.json"), "--out",
                                   t / "q.npz"], "c.json"),
    "config-list": (lambda w, t: ["quantize", "--config", config(t, [1, 2]), "--out",
                                  t / "q.npz"], "config.json"),
    "config-unknown-layer": (lambda w, t: ["quantize", "lenet5-relu", "--config", config(
        t, {"fc9": {"weight": {"width": 4}}}), "--out", t / "q.npz"], "fc9"),
    "config-pre-32-bits": (lambda w, t: ["quantize", "lenet5-classic", "--config", config(
        t, {"c1": {"pre": {"width": 32}}}), "--out", t / "q.npz"], "c1.pre"),
    "config-width-zero": (lambda w, t: ["quantize", "--config", config(
        t, {"c1": {"weight": {"width": 0}}}), "--out", t / "q.npz"], "c1.weight"),
    "config-width-text": (lambda w, t: ["quantize", "--config", config(
        t, {"c1": {"output": {"width": "eight"}}}), "--out", t / "q.npz"], "c1.output"),
    "config-huge-frac": (lambda w, t: ["quantize", "--config", config(
        t, {"c1": {"output": {"frac": 10 ** 30}}}), "--out", t / "q.npz"], "c1.output"),
    "config-bad-rounding": (lambda w, t: ["quantize", "--config", config(
        t, {"f6": {"weight": {"rounding": "up"}}}), "--out", t / "q.npz"], "f6.weight"),
    "config-pre-on-relu": (lambda w, t: ["quantize", "lenet5-relu", "--config", config(
        t, {"fc1": {"pre": {"width": 8}}}), "--out", t / "q.npz"], "fc1"),
    "config-shift-too-far": (lambda w, t: ["quantize", "lenet5-relu", "--config", config(
        t, {"out": {"output": {"frac": -100}}}), "--data-dir", mnist_folder(t / "m"), "--out",
        t / "q.npz"], "--config"),
    # export folders, manifests and vectors
    "export-missing": (lambda w, t: ["cosim", t / "none"], "none"),
    "export-empty": (lambda w, t: ["cosim", t], "manifest.json"),
    "export-is-file": (lambda w, t: ["cosim", damaged(w, t, "q.npz", lambda p: 0)], "q.npz"),
    "manifest-garbage": (lambda w, t: ["cosim", export_with(
        w, t, lambda f: (f / "manifest.json").write_bytes(b"\xff\x00{"))], "manifest.json"),
    "manifest-truncated": (lambda w, t: ["cosim", export_with(
        w, t, lambda f: truncate(f / "manifest.json"))], "manifest.json"),
    "manifest-missing-key": (lambda w, t: ["cosim", export_with(w, t, _del_key("bench"))],
                             "manifest.json"),
    "manifest-wrong-type": (lambda w, t: ["cosim", export_with(w, t, manifest_edit(
        lambda m: m.update(vectors="many")))], "vectors"),
    "manifest-negative-cols": (lambda w, t: ["cosim", export_with(w, t, manifest_edit(
        lambda m: m["array"].update(cols=-8)))], "array.cols"),
    "manifest-vector-path": (lambda w, t: ["cosim", export_with(w, t, manifest_edit(
        lambda m: m["vector_files"][0].update(path="../../etc/passwd")))], "manifest.json"),
    "vectors-truncated": (lambda w, t: ["cosim", export_with(
        w, t, vector_edit("pixels", truncate))], "pixels.bin"),
    "vectors-missing": (lambda w, t: ["cosim", export_with(
        w, t, vector_edit("logits", lambda p: p.unlink()))], "logits.bin"),
    "vectors-extra-byte": (lambda w, t: ["cosim", "--simulator", "amaranth", export_with(
        w, t, vector_edit("labels", lambda p: p.write_bytes(p.read_bytes() + b"\0")))],
        "labels.bin"),
    "cosim-too-many-images": (lambda w, t: ["cosim", w / "export", "--images", 9], "--images"),
    "cosim-zero-images": (lambda w, t: ["cosim", w / "export", "--images", 0], "--images"),
    "cosim-unknown-simulator": (lambda w, t: ["cosim", w / "export", "--simulator", "modelsim"],
                                "--simulator"),
    # data folders
    "data-missing-offline": (lambda w, t: ["evaluate", "--data-dir", t / "none"], "none"),
    "data-truncated": (lambda w, t: ["evaluate", "--data-dir", data_case(
        lambda f: truncate(f / "t10k-images-idx3-ubyte"))(w, t)], "t10k-images-idx3-ubyte"),
    "data-corrupt-gzip": (lambda w, t: ["evaluate", "--data-dir", data_case(
        lambda f: (f / "t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b" + bytes(40)))(w, t)],
        "t10k-images-idx3-ubyte"),
    "data-empty-file": (lambda w, t: ["quantize", "--data-dir", data_case(
        lambda f: (f / "train-labels-idx1-ubyte").write_bytes(b""))(w, t), "--out",
        t / "q.npz"], "train-labels-idx1-ubyte"),
    "data-label-12": (lambda w, t: ["evaluate", "--data-dir", data_case(_labels_out_of_range)(
        w, t)], "t10k-labels-idx1-ubyte"),
    "data-20x20": (lambda w, t: ["evaluate", "--data-dir", data_case(
        lambda f: write_idx(f / "t10k-images-idx3-ubyte", np.zeros((12, 20, 20))))(w, t)],
        "t10k-images-idx3-ubyte"),
    "data-is-file": (lambda w, t: ["evaluate", "--data-dir", damaged(w, t, "q.npz",
                                                                     lambda p: 0)], "--data-dir"),
    "vectors-beyond-data": (lambda w, t: ["emit-verilog", w / "q.npz", "--out", t / "rtl",
                                          "--vectors", 5000], "--vectors"),
    # options
    "array-cols": (lambda w, t: ["emit-verilog", w / "q.npz", "--out", t / "rtl", "--array",
                                 "8x0"], "--array"),
    "array-rows": (lambda w, t: ["emit-verilog", w / "q.npz", "--out", t / "rtl", "--array",
                                 "100x8"], "--array"),
    "array-text": (lambda w, t: ["emit-verilog", w / "q.npz", "--out", t / "rtl", "--array",
                                 "big"], "--array"),
    "bits-40": (lambda w, t: ["quantize", "--bits", 40, "--out", t / "q.npz"], "--bits"),
    "rounding-unknown": (lambda w, t: ["quantize", "--rounding", "up", "--out", t / "q.npz"],
                         "--rounding"),
    # unwritable outputs, found before any work
    "out-under-a-file": (lambda w, t: ["quantize", "--out", damaged(w, t, "q.npz", lambda p: 0)
                                       / "q.npz"], "--out"),
    "out-is-folder": (lambda w, t: ["quantize", "--out", t], "--out"),
    "train-out-missing-folder": (lambda w, t: ["train", "--epochs", 1000, "--out",
                                               t / "no" / "m.pt"], "--out"),
    "train-json-missing-folder": (lambda w, t: ["train", "--epochs", 1000, "--out", t / "m.pt",
                                                "--json", t / "no" / "t.json"], "--json"),
    "evaluate-json-missing-folder": (lambda w, t: ["evaluate", "--json", t / "no" / "e.json"],
                                     "--json"),
    "simulate-plot-missing-folder": (lambda w, t: ["simulate", w / "q.npz", "--plot",
                                                   t / "no" / "p.png"], "--plot"),
    "emit-out-is-file": (lambda w, t: ["emit-verilog", w / "q.npz", "--out", damaged(
        w, t, "model.pt", lambda p: 0)], "--out"),
    "cosim-json-missing-folder": (lambda w, t: ["cosim", w / "export", "--json",
                                                t / "no" / "c.json"], "--json"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(world, tmp_path, case):
    build, names = CASES[case]
    args = build(world, tmp_path)
    names = str(args[1]) if names is None else names  # the file argument itself
    before = sorted(p.name for p in tmp_path.rglob("*"))
    start = time.perf_counter()
    result = run_cli(args, tmp_path, hwlenet_env(world / "home"))
    seconds = time.perf_counter() - start
    assert result.returncode == EXIT_INPUT_ERROR, (result.returncode, result.stderr)
    line = error_line(result)
    assert names in line, line
    # nothing written: no new files, no temporary files left behind
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    # found before any long work (training 1000 epochs would take far longer)
    assert seconds < 120, seconds


def test_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("tool,simulator", [("verilator", "verilator"), ("iverilog", "icarus")])
def test_missing_tool(world, tmp_path, tool, simulator):
    """A simulator missing from PATH: one line that says how to install it."""
    folder = export_with(world, tmp_path, lambda f: 0)
    result = run_cli(["cosim", folder, "--simulator", simulator], tmp_path,
                     hwlenet_env(world / "home", PATH=str(tmp_path / "empty-bin")))
    assert result.returncode == EXIT_INPUT_ERROR, result.stderr
    assert "apt-get" in error_line(result)


def _needs(tool):
    if find_tool(tool) is None:
        pytest.skip(f"needs {tool}")


def test_damaged_design_is_one_line(world, tmp_path):
    """A damaged ``hwlenet_top.v``: the build fails and is reported in one line, status 2."""
    _needs("verilator")
    folder = export_with(world, tmp_path, lambda f: truncate(f / "hwlenet_top.v"))
    result = run_cli(["cosim", folder], tmp_path, hwlenet_env(world / "home"))
    assert result.returncode == EXIT_INPUT_ERROR, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("cosim: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: building the verilator bench")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_mismatch_alone_exits_1(world, tmp_path):
    """An expected logit changed in the vectors: the RTL disagrees, cosim says MISMATCH and
    exits with 1 (not 2), with no error line."""
    _needs("verilator")

    def change_logit(path):
        data = bytearray(path.read_bytes())
        data[1] ^= 0x01
        path.write_bytes(bytes(data))

    folder = export_with(world, tmp_path, vector_edit("logits", change_logit))
    result = run_cli(["cosim", folder, "--json", tmp_path / "c.json"], tmp_path,
                     hwlenet_env(world / "home"))
    assert result.returncode == EXIT_MISMATCH, result.stderr
    assert "MISMATCH" in result.stdout and "first mismatch: image 0, layer logits" in result.stdout
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["bit_exact"] is False and report["mismatches"] >= 1


def test_usage_errors_are_one_line(world, tmp_path):
    for args, names in ((["simulate"], "QMODEL"), (["nosuchcommand"], "nosuchcommand"),
                        (["evaluate", "--limit", 0], "--limit")):
        result = run_cli(args, tmp_path, hwlenet_env(world / "home"))
        assert result.returncode == EXIT_INPUT_ERROR
        assert names in error_line(result)


def test_interrupted_training_leaves_nothing(world, tmp_path):
    """Ctrl-C during a run: one line, status 2, no checkpoint and no temporary file."""
    command = [sys.executable, "-c", ENTRY, "train", "--epochs", 1000, "--out", "m.pt",
               "--json", "t.json"]
    # a shell's background job starts with Ctrl-C ignored, and Python then keeps it ignored:
    # give the child the default disposition, as a terminal would
    process = subprocess.Popen(list(map(str, command)), cwd=tmp_path,
                               env=hwlenet_env(world / "home"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until training has started (the data line comes first), then interrupt
    line = process.stderr.readline()
    assert line.startswith("data: "), line
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INPUT_ERROR, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_artifact(world, tmp_path, monkeypatch):
    """An artifact write interrupted half-way leaves the previous file and no temporary file."""
    from pathlib import Path

    from hwlenet.quant.artifact import load_artifact, save_artifact

    target = tmp_path / "q.npz"
    shutil.copy(world / "q.npz", target)
    old = target.read_bytes()
    qmodel = load_artifact(target)
    qmodel.provenance["changed"] = True
    original = Path.write_bytes

    def interrupted(self, data):
        original(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(qmodel, target)
    monkeypatch.undo()
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.npz"]


def test_artifact_sizes_are_checked_before_allocation(world, tmp_path):
    """A member whose header claims a huge shape is refused from its header, not allocated."""
    from hwlenet import HwlenetError
    from hwlenet.quant.artifact import load_artifact

    target = tmp_path / "huge.npz"
    with zipfile.ZipFile(world / "q.npz") as source, zipfile.ZipFile(target, "w") as sink:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "c1.weight.npy":
                data = data.replace(b"(6, 1, 5, 5)", b"(6000000000, 1)")
            sink.writestr(info.filename, data)
    with pytest.raises(HwlenetError, match="huge.npz: member 'c1.weight.npy' is damaged"):
        load_artifact(target)
