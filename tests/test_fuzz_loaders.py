"""Hypothesis mutates valid artifacts and export manifests (byte flips, truncation, edited JSON
fields, wrong dtypes and shapes, inconsistent formats): the loaders either accept a consistent
file, which the next stage then uses without error, or raise :class:`HwlenetError`, never
anything else. Seeded (``derandomize``); 2,900 cases in all."""

import copy
import functools
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from hwlenet.errors import HwlenetError
from hwlenet.quant.artifact import load_artifact, save_artifact

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
IMAGE = (np.arange(784, dtype=np.int64).reshape(1, 28, 28) * 37 % 256).astype(np.uint8)


@functools.cache
def workspace():
    return Path(tempfile.mkdtemp(prefix="hwlenet-fuzz-"))


@functools.cache
def valid_artifact(name):
    """The bytes, manifest and tensors of ``name`` quantized at 6 bits on seeded images."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.quant.quantize import quantize_model

    calibration = np.random.default_rng(5).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    qmodel = quantize_model(resolve_model(name)[0], calibration, 6, 6)
    path = workspace() / f"{name}.npz"
    save_artifact(qmodel, path)
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    manifest = json.loads(str(arrays.pop("manifest")))
    return path.read_bytes(), manifest, arrays


@functools.cache
def valid_export():
    """A real export folder (two vectors) and its manifest."""
    from hwlenet.verify.emit import emit_verilog

    _, _, _ = valid_artifact("lenet5-relu")
    qmodel = load_artifact(workspace() / "lenet5-relu.npz")
    folder = workspace() / "export"
    emit_verilog(qmodel, folder, 4, 8, np.repeat(IMAGE, 2, axis=0))
    return folder, json.loads((folder / "manifest.json").read_text())


def count(outcome):
    """Tally ``outcome`` in Hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(outcome)


def check_artifact(payload, name="case.npz"):
    """Load ``payload`` as an artifact: accepted models must validate and simulate."""
    from hwlenet.sim import simulate

    path = workspace() / name
    path.write_bytes(payload)
    try:
        qmodel = load_artifact(path)
    except HwlenetError as error:
        assert "\n" not in str(error)
        count("rejected")
        return False
    count("accepted")
    qmodel.validate()
    if qmodel.layers[0].in_shape == (1, 28, 28):
        result = simulate(qmodel, IMAGE)
        assert result.logits.shape == (1, qmodel.layers[-1].out_shape[0])
    return True


def npz_bytes(manifest, arrays):
    buffer = io.BytesIO()
    np.savez(buffer, manifest=np.array(json.dumps(manifest)), **arrays)
    return buffer.getvalue()


def json_paths(value, prefix=()):
    """Every path into a JSON value (containers and leaves)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_paths(item, prefix + (index,))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.sampled_from(
        [0, 1, -1, 2, 7, 8, 16, 31, 32, 33, 63, 64, 65, 127, 128, 129, -128, -129, 1 << 31]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["conv", "dense", "maxpool", "subsample", "tanh", "relu", "none", "wrap",
                     "floor", "half_even", "saturate", "classic", "relu", "c1", "fc1",
                     "vectors/pixels.bin", "../x.bin"]),
    st.lists(st.integers(-3, 40), max_size=4), st.just({}), st.just([]))


def mutate_json(data, document):
    """One edit of ``document`` (in place): replace, delete, duplicate or nudge a value."""
    paths = list(json_paths(document))
    path = data.draw(st.sampled_from(paths[1:]), label="path")
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "nudge", "copy"]), label="action")
    if action == "delete":
        del parent[key]
    elif action == "nudge" and isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] += data.draw(st.sampled_from([-64, -2, -1, 1, 2, 64]), label="delta")
    elif action == "copy":
        donor = data.draw(st.sampled_from(paths), label="donor")
        value = document
        for step in donor:
            value = value[step]
        parent[key] = copy.deepcopy(value)
    else:
        parent[key] = data.draw(JSON_VALUES, label="value")


def mutate_bytes(data, payload):
    payload = bytearray(payload)
    action = data.draw(st.sampled_from(["flip", "truncate", "zero", "insert"]), label="action")
    position = data.draw(st.integers(0, len(payload) - 1), label="position")
    if action == "flip":
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            index = data.draw(st.integers(0, len(payload) - 1), label="index")
            payload[index] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        return bytes(payload)
    if action == "truncate":
        return bytes(payload[:position])
    if action == "zero":
        length = data.draw(st.integers(1, 64), label="length")
        payload[position:position + length] = bytes(len(payload[position:position + length]))
        return bytes(payload)
    return bytes(payload[:position]) + data.draw(st.binary(min_size=1, max_size=16)) + bytes(
        payload[position:])


MODELS = st.sampled_from(["lenet5-relu", "lenet5-classic"])


@settings(FUZZ, max_examples=800)
@given(name=MODELS, data=st.data())
def test_damaged_artifact_bytes(name, data):
    payload, _, _ = valid_artifact(name)
    check_artifact(mutate_bytes(data, payload))


@settings(FUZZ, max_examples=700)
@given(name=MODELS, data=st.data())
def test_edited_artifact_manifest(name, data):
    _, manifest, arrays = valid_artifact(name)
    manifest = copy.deepcopy(manifest)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        if manifest is None or not isinstance(manifest, (dict, list)) or not manifest:
            break
        mutate_json(data, manifest)
    check_artifact(npz_bytes(manifest, arrays))


def _changed_tensor(data, array):
    action = data.draw(st.sampled_from(["dtype", "flatten", "extra-axis", "slice", "empty",
                                        "out-of-range", "transpose"]), label="action")
    if action == "dtype":
        dtype = data.draw(st.sampled_from([np.int32, np.int8, np.uint8, np.float32, np.float64,
                                           np.int64, np.uint64, np.bool_]), label="dtype")
        return array.astype(dtype)
    if action == "flatten":
        return array.ravel()
    if action == "extra-axis":
        return array[None]
    if action == "slice":
        return array[: max(0, len(array) - data.draw(st.integers(1, 3)))] if array.ndim else array
    if action == "empty":
        return np.zeros((0,), array.dtype)
    if action == "transpose":
        return np.ascontiguousarray(array.T)
    changed = array.copy()
    if changed.size:
        changed.flat[data.draw(st.integers(0, changed.size - 1))] = data.draw(
            st.sampled_from([1 << 40, -(1 << 40), 1 << 62, 127, -128, 0]))
    return changed


@settings(FUZZ, max_examples=500)
@given(name=MODELS, data=st.data())
def test_wrong_tensors(name, data):
    _, manifest, arrays = valid_artifact(name)
    arrays = dict(arrays)
    key = data.draw(st.sampled_from(sorted(arrays)), label="tensor")
    action = data.draw(st.sampled_from(["change", "drop", "rename", "add"]), label="what")
    if action == "drop":
        del arrays[key]
    elif action == "rename":
        arrays[key + "x"] = arrays.pop(key)
    elif action == "add":
        arrays["float/extra"] = np.zeros(3, np.float32)
    else:
        arrays[key] = _changed_tensor(data, arrays[key])
    check_artifact(npz_bytes(manifest, arrays))


@settings(FUZZ, max_examples=900)
@given(data=st.data())
def test_edited_export_manifest(data):
    """``read_export`` accepts a manifest whose every field the stages read is sound (then the
    cycle model, the report lines and the vector files all work), or raises HwlenetError."""
    from hwlenet.cli import cosim_lines
    from hwlenet.verify.cosim import predicted_cycles, read_export
    from hwlenet.verify.vectors import read_vectors

    folder, manifest = valid_export()
    target = workspace() / "export-case"
    if not target.exists():
        shutil.copytree(folder, target)
    manifest = copy.deepcopy(manifest)
    raw = None
    if data.draw(st.booleans(), label="bytes"):
        raw = mutate_bytes(data, json.dumps(manifest, indent=2).encode())
    else:
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            if not isinstance(manifest, (dict, list)) or not manifest:
                break
            mutate_json(data, manifest)
        raw = json.dumps(manifest).encode()
    (target / "manifest.json").write_bytes(raw)
    try:
        accepted = read_export(target)
    except HwlenetError as error:
        assert "\n" not in str(error)
        count("rejected")
        return
    count("accepted")
    for images in range(1, accepted["vectors"] + 1):
        assert predicted_cycles(accepted, images) >= 0
    for entry in accepted["vector_files"]:
        read_vectors(target, entry, accepted["vectors"])
    report = {"simulator": "verilator", "images": accepted["vectors"], "mismatches": 0,
              "bit_exact": True, "cycles_per_image": 1.0,
              "analytic_cycles_per_image": accepted["analytic"]["cycles_per_image"],
              "cycles": 1, "predicted_cycles": 1, "images_per_second": 1.0, "wave": None,
              "first_mismatch": None, "hang": None, "coverage": accepted["coverage"]}
    assert cosim_lines(report)


def test_the_unmutated_files_are_accepted():
    for name in ("lenet5-relu", "lenet5-classic"):
        payload, manifest, arrays = valid_artifact(name)
        assert check_artifact(payload)
        assert check_artifact(npz_bytes(manifest, arrays))
    folder, _ = valid_export()
    from hwlenet.verify.cosim import read_export

    assert read_export(folder)["vectors"] == 2


@pytest.fixture(scope="module", autouse=True)
def _clean_workspace():
    yield
    shutil.rmtree(workspace(), ignore_errors=True)
