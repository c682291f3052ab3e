"""hwlenet.explore: specs, cached stages, Pareto fronts, and a real Dask cluster that loses a
worker mid-sweep."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from hwlenet.errors import HwlenetError
from hwlenet.explore import (
    explore, load_spec, pareto_front, parse_spec, start_client, submit_sweep, write_results)
from hwlenet.explore.stages import emit_stage, quantize_stage, simulate_stage
from hwlenet.sim import simulate
from hwlenet.quant.artifact import load_artifact

MODEL = "lenet5-relu"


@pytest.mark.parametrize("spec, message", [
    ([], "a mapping"),
    ({}, "models must name at least one entry"),
    ({"models": ["no-such.pt"], "bits": [8]}, "no such file"),
    ({"models": [MODEL]}, "at least one precision"),
    ({"models": [MODEL], "bits": [1]}, "bits must be an integer from 2"),
    ({"models": [MODEL], "bits": [8, 8]}, "lists an entry twice"),
    ({"models": [MODEL], "bits": [8], "stages": "cosim"}, "arrays must name"),
    ({"models": [MODEL], "bits": [8], "arrays": ["0x4"], "stages": "emit"}, "array rows"),
    ({"models": [MODEL], "bits": [8], "arrays": ["4x4"], "stages": "synth"}, "targets must"),
    ({"models": [MODEL], "bits": [8], "arrays": ["4x4"], "stages": "synth",
      "targets": ["ecp5-1f"]}, "unknown synthesis target"),
    ({"models": [MODEL], "bits": [8], "stages": "place"}, "stages must be one of"),
    ({"models": [MODEL], "bits": [8], "simulator": "vcs"}, "simulator must be one of"),
    ({"models": [MODEL], "bits": [8], "vectors": 0}, "vectors must be an integer"),
    ({"models": [MODEL], "bits": [8], "colour": "red"}, "unknown field 'colour'"),
    ({"models": [MODEL], "sweeps": []}, "sweeps must be a non-empty list"),
    ({"models": [MODEL], "bits": [4], "qat": "yes"}, "qat must be true, false or a list"),
    ({"models": [MODEL], "bits": [4], "qat": True, "qat_epochs": 0}, "qat_epochs must be"),
    ({"models": [MODEL], "sweeps": [{"bits": [8], "vectors": 3}]},
     "sweeps[0]: unknown field 'vectors'"),
])
def test_bad_specs_are_refused_naming_the_field(spec, message):
    with pytest.raises(HwlenetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(spec)


def test_sweeps_share_defaults_and_points_multiply(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(f"models: [{MODEL}, lenet5-classic]\ntest_images: 50\nsweeps:\n"
                    "  - {bits: [4, 6, 8]}\n"
                    "  - {bits: [8], arrays: [4x4, 3x5], targets: [ecp5-25f, ecp5-45f], "
                    "stages: synth}\n")
    spec = load_spec(path)
    assert spec.test_images == 50 and len(spec.parts) == 2
    points = spec.points()
    assert len(points) == 2 * 3 + 2 * 1 * 2 * 2
    assert {point[0].stages for point in points} == {"simulate", "synth"}
    assert ((4, 4) in spec.parts[1].arrays) and ((3, 5) in spec.parts[1].arrays)


@pytest.mark.parametrize("name, text, message", [
    ("spec.yaml", "models: [a\n", "not valid YAML"),
    ("spec.json", "{\"models\": ", "not valid JSON"),
])
def test_unreadable_specs_name_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(HwlenetError, match=message):
        load_spec(path)


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_is_exactly_the_undominated_points(seed):
    rng = np.random.default_rng(seed)
    points = [tuple(map(float, pair)) for pair in rng.integers(0, 6, (30, 2))]
    front = pareto_front(points)
    for index, (cost, accuracy) in enumerate(points):
        beaten = any(c <= cost and a >= accuracy and (c, a) != (cost, accuracy)
                     for c, a in points)
        assert (index in front) == (not beaten)
    assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def test_stages_are_cached_by_their_inputs(tmp_path, digit_images):
    calibration, images = digit_images[0][:100], digit_images[1][:40]
    labels = np.arange(len(images)) % 10
    first = quantize_stage(tmp_path, MODEL, {"bits": 6}, calibration)
    assert not first["cached"] and "error" not in first
    again = quantize_stage(tmp_path, MODEL, {"bits": 6}, calibration)
    assert again["cached"] and again["artifact_sha256"] == first["artifact_sha256"]
    other = quantize_stage(tmp_path, MODEL, {"bits": 6}, calibration[:99])
    assert not other["cached"] and other["key"] != first["key"]
    scored = simulate_stage(tmp_path, first, images, labels)
    expected = simulate(load_artifact(tmp_path / first["artifact"]), images).classes
    assert scored["correct"] == int(np.sum(expected == labels))
    assert simulate_stage(tmp_path, first, images, labels)["cached"]
    assert not list((tmp_path / "stages").glob("*/.staging-*"))


def test_a_qat_point_fine_tunes_before_quantizing_and_is_cached(tmp_path, digit_images):
    calibration, images = digit_images[0][:100], digit_images[1][:40]
    rng = np.random.default_rng(2)
    train = (digit_images[0][:128], rng.integers(0, 10, 128).astype(np.uint8))
    plain = quantize_stage(tmp_path, MODEL, {"bits": 4, "qat_epochs": 0}, calibration)
    tuned = quantize_stage(tmp_path, MODEL, {"bits": 4, "qat_epochs": 1}, calibration, train)
    assert "error" not in tuned and not tuned["cached"] and tuned["key"] != plain["key"]
    before = load_artifact(tmp_path / plain["artifact"])
    after = load_artifact(tmp_path / tuned["artifact"])
    assert max(layer.weight_format.width for layer in after.layers
               if layer.weight is not None and layer.name != "out") == 4
    assert any(not np.array_equal(b.weight, a.weight)
               for b, a in zip(before.layers, after.layers) if a.weight is not None)
    simulate(after, images)  # a valid artifact the simulator runs
    again = quantize_stage(tmp_path, MODEL, {"bits": 4, "qat_epochs": 1}, calibration, train)
    assert again["cached"] and again["artifact_sha256"] == tuned["artifact_sha256"]


def test_a_damaged_result_is_recomputed_and_set_aside(tmp_path, digit_images):
    calibration = digit_images[0][:50]
    first = quantize_stage(tmp_path, MODEL, {"bits": 8}, calibration)
    folder = tmp_path / "stages" / "quantize" / first["key"]
    (folder / "result.json").write_text("{not json")
    again = quantize_stage(tmp_path, MODEL, {"bits": 8}, calibration)
    assert not again["cached"] and again["artifact_sha256"] == first["artifact_sha256"]
    assert json.loads((folder / "result.json").read_text())["key"] == first["key"]
    assert len(list(folder.parent.glob(".broken-*"))) == 1


def test_a_failing_stage_leaves_no_result(tmp_path, digit_images, monkeypatch):
    import hwlenet.verify.emit as emit

    def half_written(qmodel, directory, *args, **kwargs):
        directory.mkdir(parents=True)
        (directory / "hwlenet_top.v").write_text("module hwlenet_top")
        raise RuntimeError("disk on fire")

    first = quantize_stage(tmp_path, MODEL, {"bits": 8}, digit_images[0][:50])
    monkeypatch.setattr(emit, "emit_verilog", half_written)
    with pytest.raises(RuntimeError, match="disk on fire"):
        emit_stage(tmp_path, first, (2, 2), digit_images[1][:2])
    assert list((tmp_path / "stages" / "emit").iterdir()) == []


def test_an_error_in_the_input_is_a_result_not_a_crash(tmp_path, digit_images):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": {"nope": {}}}))
    result = quantize_stage(tmp_path, MODEL, {"config": str(bad)}, digit_images[0][:50])
    assert result["stage"] == "quantize" and "nope" in result["error"]
    assert simulate_stage(tmp_path, result, digit_images[1][:5], np.zeros(5))["error"]


@pytest.fixture(scope="module")
def cluster_sweep(tmp_path_factory, digit_images):
    """A sweep on a real two-worker LocalCluster whose worker running the co-simulation is
    killed mid-task: simulate-only points at three widths plus one co-simulated point."""
    root = tmp_path_factory.mktemp("explore")
    spec = parse_spec({"models": [MODEL], "test_images": 300, "vectors": 2,
                       "calibration": 200,
                       "sweeps": [{"bits": [5, 6, 8]},
                                  {"bits": [8], "arrays": ["2x2"], "stages": "cosim"}]})
    calibration, images = digit_images[0][:200], digit_images[1][:300]
    labels = simulate(load_artifact_of(root, calibration), images).classes.copy()
    labels[::7] = (labels[::7] + 1) % 10  # a known, imperfect accuracy
    data = {"calibration": calibration, "test_images": images, "test_labels": labels,
            "vectors": images[:2]}
    client, cluster = start_client(workers=2)
    try:
        points, futures = submit_sweep(client, spec, root, data)
        victim = _worker_running(client, root, "cosim")
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        results = client.gather(futures)
        rows = [{name: future.result() for name, future in point["stages"].items()}
                for point in points]
        rerun = explore(spec, root, data, client, progress=False)
    finally:
        client.close()
        cluster.close()
    return {"root": root, "spec": spec, "data": data, "results": results, "points": points,
            "rows": rows, "rerun": rerun}


def load_artifact_of(root, calibration):
    """The 8-bit artifact the sweep's quantize stage computes, built outside the cluster."""
    result = quantize_stage(root / "reference", MODEL, {"bits": 8}, calibration)
    return load_artifact(root / "reference" / result["artifact"])


def _worker_running(client, root, stage, timeout=600):
    """The address of the worker that is running ``stage`` (its staging folder exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((root / "stages" / stage).glob(".staging-*")):
            for address, keys in client.processing().items():
                if any(str(key).startswith(f"{stage}-") for key in keys):
                    time.sleep(1.0)
                    return address
        time.sleep(0.2)
    raise AssertionError(f"no {stage} task started within {timeout} s")


def test_the_sweep_survives_a_killed_worker(cluster_sweep):
    rows = cluster_sweep["rows"]
    assert len(rows) == 4
    assert all("error" not in result for row in rows for result in row.values())
    cosim = [row["cosim"] for row in rows if "cosim" in row]
    assert len(cosim) == 1 and cosim[0]["bit_exact"] and cosim[0]["images"] == 2
    assert cosim[0]["cycles"] == cosim[0]["predicted_cycles"]
    # the killed attempt left its staging folder (so it was killed mid-task), never a result
    folders = list((cluster_sweep["root"] / "stages" / "cosim").iterdir())
    finals = [path for path in folders if not path.name.startswith(".")]
    assert len(finals) == 1 and (finals[0] / "result.json").is_file()
    assert any(path.name.startswith(".staging-") for path in folders)


def test_every_result_is_what_the_stage_computes_alone(cluster_sweep):
    data = cluster_sweep["data"]
    for row in cluster_sweep["rows"]:
        artifact = load_artifact(cluster_sweep["root"] / row["quantize"]["artifact"])
        classes = simulate(artifact, data["test_images"]).classes
        assert row["simulate"]["correct"] == int(np.sum(classes == data["test_labels"]))
    widths = sorted({row["quantize"]["weight_memory_bits"] for row in cluster_sweep["rows"]})
    assert len(widths) == 3  # 5, 6 and 8 bits; the 8-bit quantization is shared


def test_a_rerun_computes_nothing_and_writes_the_table(cluster_sweep, tmp_path):
    rerun = cluster_sweep["rerun"]
    assert rerun["computed"] == 0 and rerun["cached"] == rerun["tasks"] == 8
    assert rerun["failed"] == 0
    accuracy = {(row["precision"], row["array"]): row["accuracy"] for row in rerun["rows"]}
    assert 0.8 < accuracy[("8 bits", None)] < 0.9  # every 7th label was made wrong
    assert accuracy[("8 bits", None)] == accuracy[("8 bits", "2x2")]
    paths = write_results(rerun, tmp_path)
    header = paths["csv"].read_text().splitlines()[0]
    assert header.startswith("model,precision,array,target,")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["tasks"] == 8


def _cli(args, cwd, timeout=600):
    environment = {**os.environ, "HWLENET_MIRRORS": ""}
    return subprocess.run([sys.executable, "-c", "from hwlenet.cli import main; main()",
                           *map(str, args)], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("text, message", [
    ("models: [lenet5-relu]\nbits: [8]\nstages: cosim\n", "arrays must name at least one"),
    ("models: [lenet5-relu\n", "not valid YAML"),
])
def test_cli_refuses_a_bad_spec_in_one_line(tmp_path, text, message):
    (tmp_path / "spec.yaml").write_text(text)
    result = _cli(["explore", "spec.yaml", "--out", "out"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_runs_on_an_existing_scheduler_and_reuses_its_cache(tmp_path):
    from dask.distributed import LocalCluster

    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for images, labels in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        count = 40
        pixels = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        (folder / images).write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", count, 28, 28)
                                      + pixels.tobytes())
        (folder / labels).write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", count)
                                      + rng.integers(0, 10, count, dtype=np.uint8).tobytes())
    (tmp_path / "spec.json").write_text(json.dumps(
        {"models": [MODEL], "bits": [4, 8], "test_images": 40, "calibration": 40}))
    args = ["explore", "spec.json", "--out", "out", "--data-dir", folder, "--json", "run.json"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        first = _cli([*args, "--scheduler", cluster.scheduler_address], tmp_path)
        assert first.returncode == 0, first.stderr
        again = _cli([*args, "--scheduler", cluster.scheduler_address], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4 tasks: 4 computed" in first.stdout
    assert "4 tasks: 0 computed, 4 from the cache" in again.stdout
    assert "dashboard" in first.stderr
    rows = json.loads((tmp_path / "run.json").read_text())["rows"]
    assert [row["precision"] for row in rows] == ["4 bits", "8 bits"]
    assert all(row["test_images"] == 40 and row["accuracy"] is not None for row in rows)
    table = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(table) == 3 and (tmp_path / "out" / "pareto.png").is_file()


@pytest.mark.parametrize("workers", [0, -1, True, 2.0])
def test_start_client_refuses_a_bad_worker_count(workers):
    with pytest.raises(HwlenetError, match="workers must be a positive integer or None"):
        start_client(workers=workers)
