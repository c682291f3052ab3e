"""Run an exported folder's self-checking testbench on an open simulator and read its verdict."""

import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import HwlenetError
from ..tools import find_tool

__all__ = ["SIMULATORS", "read_export", "run_cosim"]

SIMULATORS = ("verilator", "icarus", "amaranth")
INSTALL_HINT = {
    "verilator": "verilator is not installed: apt-get install -y verilator (as root or with sudo)",
    "icarus": "Icarus Verilog is not installed: apt-get install -y iverilog (as root or sudo)",
}
_RESULT = re.compile(r"RESULT images=(\d+) mismatches=(\d+) cycles=(\d+)")
_MISMATCH = re.compile(r"FIRST_MISMATCH image=(\d+) layer=(\S+) element=(\d+) "
                       r"expected=(-?\d+) actual=(-?\d+)")


def read_export(directory):
    """The manifest of a folder written by ``hwlenet emit-verilog``."""
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise HwlenetError(f"{directory} is not an hwlenet export (no manifest.json); "
                           "create one with hwlenet emit-verilog") from None
    except (OSError, json.JSONDecodeError) as error:
        raise HwlenetError(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or "vectors" not in manifest or "analytic" not in manifest:
        raise HwlenetError(f"{path} is not an hwlenet export manifest")
    return manifest


def _plan_of(directory, manifest):
    from ..quant.artifact import load_artifact
    from .plan import plan_hardware

    qmodel = load_artifact(Path(directory) / "model.npz")
    return plan_hardware(qmodel, manifest["array"]["rows"], manifest["array"]["cols"])


def _run(command, directory):
    try:
        completed = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise HwlenetError(f"cannot run {command[0]}: {error.strerror}") from None
    return completed


def _build(directory, simulator):
    tool = "verilator" if simulator == "verilator" else "iverilog"
    if find_tool(tool) is None:
        raise HwlenetError(INSTALL_HINT[simulator])
    if find_tool("make") is None:
        raise HwlenetError("make is not installed: apt-get install -y make")
    target = "obj_dir/Vtb" if simulator == "verilator" else "tb_icarus.vvp"
    completed = _run(["make", "--no-print-directory", target], directory)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-5:])
        raise HwlenetError(f"building the {simulator} bench failed:\n{tail}")


def _parse(output, first):
    result = _RESULT.search(output)
    if result is None:
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise HwlenetError(f"the testbench ended without a verdict:\n{tail}")
    images, mismatches, cycles = (int(v) for v in result.groups())
    report = {"images": images, "mismatches": mismatches, "cycles": cycles,
              "first_mismatch": None}
    found = _MISMATCH.search(output)
    if found:
        image, layer, element, expected, actual = found.groups()
        report["first_mismatch"] = {"image": int(image), "layer": layer,
                                    "element": int(element), "expected": int(expected),
                                    "actual": int(actual)}
    if "FAIL: timeout" in output:
        report["timeout"] = True
    return report


def _run_range(directory, simulator, first, count):
    if simulator == "verilator":
        command = ["./obj_dir/Vtb", f"+images={count}", f"+first={first}"]
    else:
        command = ["vvp", "-n", "tb_icarus.vvp", f"+images={count}", f"+first={first}"]
    completed = _run(command, directory)
    return _parse(completed.stdout + completed.stderr, first)


def run_cosim(directory, simulator="verilator", images=None, jobs=1):
    """Co-simulate an exported folder and compare the RTL with the numba simulator's vectors.

    Parameters
    ----------
    directory : path-like
        A folder written by :func:`hwlenet.rtl.emit.emit_verilog` with test vectors.
    simulator : {"verilator", "icarus", "amaranth"}
    images : int, optional
        How many of the exported vectors to run (all by default).
    jobs : int
        Simulator processes run in parallel on consecutive ranges of images.

    Returns
    -------
    dict
        ``simulator``, ``images``, ``mismatches``, ``bit_exact``, ``cycles_per_image``,
        ``analytic_cycles_per_image`` (steady state) and its relative error, ``cycles`` and
        ``predicted_cycles`` (the exact model of this run), ``first_mismatch`` (image, layer,
        element, expected, actual) and timing.
    """
    if simulator not in SIMULATORS:
        raise HwlenetError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    directory = Path(directory)
    manifest = read_export(directory)
    available = manifest["vectors"]
    if available == 0:
        raise HwlenetError(f"{directory} holds no test vectors: re-run hwlenet emit-verilog "
                           "with --vectors N --data-dir DIR")
    images = available if images is None else images
    if not 1 <= images <= available:
        raise HwlenetError(f"--images must be from 1 to {available} (the exported vectors), "
                           f"not {images}")
    build_start = time.perf_counter()
    if simulator != "amaranth":
        _build(directory, simulator)
    start = time.perf_counter()
    if simulator == "amaranth":
        from .amaranth_bench import run_amaranth_bench

        parts = [run_amaranth_bench(directory, manifest, images)]
    else:
        jobs = max(1, min(jobs, images))
        bounds = [images * j // jobs for j in range(jobs + 1)]
        with ThreadPoolExecutor(jobs) as pool:
            parts = list(pool.map(lambda j: _run_range(directory, simulator, bounds[j],
                                                       bounds[j + 1] - bounds[j]),
                                  range(jobs)))
    seconds = time.perf_counter() - start
    checked = sum(part["images"] for part in parts)
    mismatches = sum(part["mismatches"] for part in parts)
    first = next((part["first_mismatch"] for part in parts if part["first_mismatch"]), None)
    timed_out = any(part.get("timeout") for part in parts)
    cycles = sum(part["cycles"] for part in parts)
    analytic = manifest["analytic"]["cycles_per_image"]
    measured = cycles / checked if checked else None
    plan = _plan_of(directory, manifest)
    sizes = [images] if simulator == "amaranth" else [
        bounds[j + 1] - bounds[j] for j in range(jobs)]
    predicted = sum(plan.predicted_cycles(size) for size in sizes)
    return {
        "simulator": simulator,
        "images": checked,
        "requested_images": images,
        "mismatches": mismatches,
        "bit_exact": mismatches == 0 and checked == images and not timed_out,
        "cycles_per_image": measured,
        "analytic_cycles_per_image": analytic,
        "steady_state_error": (measured - analytic) / analytic if measured else None,
        "cycles": cycles,
        "predicted_cycles": predicted,
        "first_mismatch": first,
        "timeout": timed_out,
        "build_seconds": start - build_start,
        "seconds": seconds,
        "images_per_second": checked / seconds if seconds else None,
        "array": manifest["array"],
        "jobs": jobs if simulator != "amaranth" else 1,
    }
