"""Run an exported folder's self-checking testbench on an open simulator and read its verdict."""

import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ..defaults import resolve_jobs
from ..errors import HwlenetError
from ..tools import find_tool

__all__ = ["SIMULATORS", "bench_processes", "build_bench", "check_design_identity",
           "check_image_count", "predicted_cycles", "read_export", "require_tools", "run_bench",
           "run_cosim"]

SIMULATORS = ("verilator", "icarus", "amaranth")
INSTALL_HINT = {
    "verilator": "verilator is not installed: apt-get install -y verilator (as root or with sudo)",
    "icarus": "Icarus Verilog is not installed: apt-get install -y iverilog (as root or sudo)",
}
_RESULT = re.compile(r"RESULT images=(\d+) mismatches=(\d+) cycles=(\d+)")
_PROGRESS = re.compile(r"PROGRESS images=(\d+)")
_MISMATCH = re.compile(r"FIRST_MISMATCH image=(\d+) layer=(\S+) element=(-?\d+) "
                       r"expected=(-?\d+) actual=(-?\d+) kind=(\S+) cycle=(\d+)")
_HANG = re.compile(r"HANG image=(\d+) last_layer=(\S+) cycle=(\d+)")
_ACTIVATIONS = re.compile(r"FAULT_ACTIVATIONS (\d+)")
#: Wall-clock seconds a simulator process may take per image before it is stopped, plus a
#: fixed allowance for start-up (Icarus is about a thousand times slower than Verilator).
SECONDS_PER_IMAGE = {"verilator": 2.0, "icarus": 600.0}
STARTUP_SECONDS = 120.0
#: About how many progress lines a bench process prints when a progress bar is shown.
PROGRESS_LINES = 200
BENCHES = {"verilator": {"plain": "obj_dir/Vtb", "wave": "obj_dir_wave/Vtb",
                         "faults": "obj_dir_faults/Vtb"},
           "icarus": {"plain": "tb_icarus.vvp", "wave": "tb_icarus_wave.vvp",
                      "faults": "tb_icarus_faults.vvp"}}
#: Cycles of waveform kept before the first mismatch (or the whole run when shorter).
WAVE_WINDOW = 20000


def predicted_cycles(manifest, images):
    """Exact cycles of a run of ``images`` images, from the cycle model the export recorded.

    A run's last batch holds ``((images - 1) % cols) + 1`` images; every earlier batch is full
    and adds the same ``batch_cycles``.
    """
    cols = manifest["array"]["cols"]
    if images < 1:
        raise HwlenetError(f"a run needs at least one image, not {images}")
    tail = (images - 1) % cols + 1
    return manifest["predicted_cycles"][str(tail)] + (images - tail) // cols * manifest[
        "batch_cycles"]


#: The most vectors an export may claim (the MNIST test set plus directed vectors, generously).
MAX_VECTORS = 1 << 20
_NUMBER = (int, float)


def _fail(path, where, expected, value):
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    raise HwlenetError(f"{path}: {where} must be {expected}, not {text}; re-create the folder "
                       "with hwlenet emit-verilog")


def _integer(value, path, where, low=0, high=None):
    if (not isinstance(value, int) or isinstance(value, bool) or value < low
            or (high is not None and value > high)):
        bounds = f"an integer from {low}" + (f" to {high}" if high is not None else "")
        _fail(path, where, bounds, value)
    return value


def _number(value, path, where, positive=False):
    if not isinstance(value, _NUMBER) or isinstance(value, bool) or value != value \
            or value in (float("inf"), float("-inf")) or (positive and value <= 0):
        _fail(path, where, "a positive number" if positive else "a number", value)
    return value


def _mapping(value, path, where, keys=()):
    if not isinstance(value, dict):
        _fail(path, where, "an object", value)
    for key in keys:
        if key not in value:
            raise HwlenetError(f"{path}: {where} lacks {key!r}; re-create the folder with "
                               "hwlenet emit-verilog")
    return value


def _sequence(value, path, where):
    if not isinstance(value, list):
        _fail(path, where, "a list", value)
    return value


def _check_coverage(coverage, path):
    if coverage is None:
        return
    _mapping(coverage, path, "coverage", ("images", "layers"))
    _integer(coverage["images"], path, "coverage.images")
    for row in _sequence(coverage["layers"], path, "coverage.layers"):
        _mapping(row, path, "a coverage row", ("name", "table", "weights"))
        if not isinstance(row["name"], str):
            _fail(path, "a coverage row's name", "a string", row["name"])
        table, weights = row["table"], row["weights"]
        if table is not None:
            _mapping(table, path, "a coverage table", ("hit", "reachable", "entries",
                                                        "fraction_of_reachable", "missed",
                                                        "unreachable"))
            for key in ("hit", "reachable", "entries"):
                _integer(table[key], path, f"coverage table {key}")
            _number(table["fraction_of_reachable"], path, "coverage fraction_of_reachable")
            for run in _sequence(table["missed"], path, "coverage missed runs"):
                if (not isinstance(run, list) or len(run) != 2
                        or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in run)):
                    _fail(path, "a missed run", "a pair of integers", run)
            for run in _sequence(table["unreachable"], path, "coverage unreachable runs"):
                _mapping(run, path, "an unreachable run", ("low", "high", "reason"))
                _integer(run["low"], path, "an unreachable run's low", low=-(1 << 63))
                _integer(run["high"], path, "an unreachable run's high", low=-(1 << 63))
                if not isinstance(run["reason"], str):
                    _fail(path, "an unreachable run's reason", "a string", run["reason"])
        if weights is not None:
            _mapping(weights, path, "coverage weights", ("exercised", "words", "fraction",
                                                         "live", "live_fraction"))
            for key in ("exercised", "words", "live"):
                _integer(weights[key], path, f"coverage weights {key}")
            for key in ("fraction", "live_fraction"):
                _number(weights[key], path, f"coverage weights {key}")


def _check_vector_files(manifest, path, directory):
    """Every vector file the bench reads is listed once, sized for the vectors, and present."""
    from .vectors import word_bytes

    bench = manifest["bench"]
    count = manifest["vectors"]
    files = {}
    for entry in _sequence(manifest["vector_files"], path, "vector_files"):
        _mapping(entry, path, "a vector file entry", ("name", "path", "bits", "signed",
                                                      "per_image", "bytes"))
        name = entry["name"]
        if not isinstance(name, str) or entry["path"] != f"vectors/{name}.bin" \
                or "/" in name or name in ("", ".", ".."):
            _fail(path, "a vector file's name and path", "NAME and vectors/NAME.bin",
                  [name, entry["path"]])
        if name in files:
            raise HwlenetError(f"{path}: vector file {name} is listed twice")
        _integer(entry["bits"], path, f"vector file {name}'s bits", low=1, high=64)
        if not isinstance(entry["signed"], bool):
            _fail(path, f"vector file {name}'s signed", "true or false", entry["signed"])
        _integer(entry["per_image"], path, f"vector file {name}'s per_image", low=1,
                 high=1 << 24)
        if entry["bytes"] != word_bytes(entry["bits"]):
            _fail(path, f"vector file {name}'s bytes", f"{word_bytes(entry['bits'])}",
                  entry["bytes"])
        files[name] = entry
    widths = manifest["widths"]
    # name -> (words per image, bits, signed), as the export writes them
    expected = {"pixels": (bench["pixels"], bench["pixel_bits"], False),
                "logits": (bench["classes"], widths["logit"], True),
                "labels": (1, bench["label_bits"], False)}
    expected.update({layer["name"]: (layer["size"], widths["value"], True)
                     for layer in manifest["traced_layers"]})
    for name, layout in expected.items():
        if name not in files:
            raise HwlenetError(f"{path}: no vector file {name}; re-create the folder with "
                               "hwlenet emit-verilog")
        entry = files[name]
        if (entry["per_image"], entry["bits"], entry["signed"]) != layout:
            _fail(path, f"vector file {name}'s per_image, bits and signed",
                  " ".join(map(str, layout)), [entry["per_image"], entry["bits"],
                                                entry["signed"]])
    if count == 0:
        return
    for name, entry in files.items():
        file = Path(directory) / entry["path"]
        try:
            size = file.stat().st_size
        except OSError as error:
            raise HwlenetError(f"cannot read {file}: {error.strerror}") from None
        wanted = count * entry["per_image"] * entry["bytes"]
        if size != wanted:
            raise HwlenetError(f"{file}: {size} bytes where {count} vectors need {wanted} "
                               "(damaged or from another export)")


def read_export(directory):
    """The manifest of a folder written by ``hwlenet emit-verilog``, checked.

    Every field a bench or a report reads is checked for its type and range, the vector files
    are checked to be listed consistently and to have exactly the size the manifest implies,
    so that no later stage meets a damaged file.

    Raises
    ------
    HwlenetError
        Naming the folder or file, when it is not an export, the manifest is damaged or of
        another version, or a vector file is missing or of the wrong size.
    """
    directory = Path(directory)
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise HwlenetError(f"{directory} is not a folder; create an export with hwlenet "
                           "emit-verilog")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HwlenetError(f"{directory} is not an hwlenet export (no manifest.json); "
                           "create one with hwlenet emit-verilog") from None
    except (OSError, ValueError, RecursionError) as error:
        reason = " ".join(str(error).split())[:120]
        raise HwlenetError(f"cannot read {path}: {reason}") from None
    required = ("vectors", "directed_vectors", "coverage", "analytic", "array", "trace",
                "traced_layers", "predicted_cycles", "batch_cycles", "widths", "memories",
                "registers", "vector_files", "bench")
    if not isinstance(manifest, dict) or any(key not in manifest for key in required):
        raise HwlenetError(f"{path} is not an hwlenet export manifest of this version; "
                           "re-create the folder with hwlenet emit-verilog")
    count = _integer(manifest["vectors"], path, "vectors", high=MAX_VECTORS)
    _integer(manifest["directed_vectors"], path, "directed_vectors", high=count)
    array = _mapping(manifest["array"], path, "array", ("rows", "cols"))
    _integer(array["rows"], path, "array.rows", low=1, high=1024)
    cols = _integer(array["cols"], path, "array.cols", low=1, high=1024)
    if not isinstance(manifest["trace"], bool):
        _fail(path, "trace", "true or false", manifest["trace"])
    analytic = _mapping(manifest["analytic"], path, "analytic", ("cycles_per_image",))
    _number(analytic["cycles_per_image"], path, "analytic.cycles_per_image", positive=True)
    bench = _mapping(manifest["bench"], path, "bench", ("pixels", "pixel_bits", "classes",
                                                        "label_bits", "window", "watchdog"))
    for key in ("pixels", "pixel_bits", "classes", "label_bits", "window", "watchdog"):
        _integer(bench[key], path, f"bench.{key}", low=1, high=1 << 40)
    predicted = _mapping(manifest["predicted_cycles"], path, "predicted_cycles",
                         [str(n) for n in range(1, cols + 1)])
    for n in range(1, cols + 1):
        _integer(predicted[str(n)], path, f"predicted_cycles[{n}]")
    _integer(manifest["batch_cycles"], path, "batch_cycles")
    widths = _mapping(manifest["widths"], path, "widths", ("accumulator", "logit", "value"))
    _integer(widths["accumulator"], path, "widths.accumulator", low=2, high=64)
    _integer(widths["logit"], path, "widths.logit", low=2, high=64)
    _integer(widths["value"], path, "widths.value", low=2, high=64)
    _sequence(manifest["memories"], path, "memories")
    for register in _sequence(manifest["registers"], path, "registers"):
        _mapping(register, path, "a register", ("name", "path", "block", "width", "unread"))
        if not isinstance(register["unread"], bool):
            _fail(path, "a register's unread", "true or false", register["unread"])
        if not isinstance(register["name"], str) or not isinstance(register["block"], str):
            _fail(path, "a register's name and block", "strings", register)
        if (not isinstance(register["path"], list) or not register["path"]
                or not all(isinstance(part, str) and part for part in register["path"])):
            _fail(path, "a register's path", "a list of names", register["path"])
        _integer(register["width"], path, "a register's width", low=1, high=1 << 16)
    names = set()
    for layer in _sequence(manifest["traced_layers"], path, "traced_layers"):
        _mapping(layer, path, "a traced layer", ("index", "name", "size"))
        _integer(layer["index"], path, "a traced layer's index", high=1 << 16)
        _integer(layer["size"], path, "a traced layer's size", low=1, high=1 << 24)
        if not isinstance(layer["name"], str) or layer["name"] in names | {"pixels", "logits",
                                                                          "labels"}:
            _fail(path, "a traced layer's name", "a new string", layer["name"])
        names.add(layer["name"])
    if not manifest["trace"] and manifest["traced_layers"]:
        raise HwlenetError(f"{path}: an export without a trace port traces no layers")
    _check_coverage(manifest["coverage"], path)
    _check_vector_files(manifest, path, directory)
    return manifest


def _cannot_run(command, error):
    return HwlenetError(f"cannot run {command[0]}: {error.strerror}")


def _timed_out(command, timeout):
    return HwlenetError(f"{' '.join(command)} did not finish within {timeout:.0f} s and was "
                        "stopped")


def _run(command, directory, timeout=None):
    try:
        completed = subprocess.run(command, cwd=directory, capture_output=True, text=True,
                                   timeout=timeout)
    except FileNotFoundError as error:
        raise _cannot_run(command, error) from None
    except subprocess.TimeoutExpired:
        raise _timed_out(command, timeout) from None
    return completed


def require_tools(simulator):
    """Check that the tools the ``simulator`` bench needs are installed (none for amaranth).

    Raises
    ------
    HwlenetError
        Saying how to install the missing tool.
    """
    if simulator not in SIMULATORS:
        raise HwlenetError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "amaranth":
        return
    tool = "verilator" if simulator == "verilator" else "iverilog"
    if find_tool(tool) is None:
        raise HwlenetError(INSTALL_HINT[simulator])
    if find_tool("make") is None:
        raise HwlenetError("make is not installed: apt-get install -y make")


def check_image_count(manifest, directory, images):
    """The number of vectors a run checks: ``images`` (all when None), from 1 to the exported
    vectors."""
    available = manifest["vectors"]
    if available == 0:
        raise HwlenetError(f"{directory} holds no test vectors: re-run hwlenet emit-verilog "
                           "with --vectors N")
    images = available if images is None else images
    if not 1 <= images <= available:
        raise HwlenetError(f"--images must be from 1 to {available} (the exported vectors), "
                           f"not {images}")
    return images


def build_bench(directory, simulator, variant="plain"):
    """Build the exported bench for ``simulator`` (``variant``: plain, wave or faults) with
    the folder's Makefile; returns the path of the executable or compiled image."""
    require_tools(simulator)
    target = BENCHES[simulator][variant]
    completed = _run(["make", "--no-print-directory", target], directory)
    if completed.returncode != 0:
        lines = (completed.stdout + completed.stderr).strip().splitlines()
        errors = [line for line in lines if "rror" in line] or lines[-1:]
        raise HwlenetError(f"building the {simulator} bench in {directory} failed: "
                           f"{errors[0].strip()}")
    return target


def _parse(output):
    result = _RESULT.search(output)
    if result is None:
        last = output.strip().splitlines()[-1:] or ["no output"]
        raise HwlenetError(f"the testbench ended without a verdict: {last[0]}")
    images, mismatches, cycles = (int(v) for v in result.groups())
    activations = _ACTIVATIONS.search(output)
    report = {"images": images, "mismatches": mismatches, "cycles": cycles,
              "first_mismatch": None, "hang": None,
              "fault_activations": int(activations.group(1)) if activations else None}
    found = _MISMATCH.search(output)
    if found:
        image, layer, element, expected, actual, kind, cycle = found.groups()
        report["first_mismatch"] = {"image": int(image), "layer": layer,
                                    "element": int(element), "expected": int(expected),
                                    "actual": int(actual), "kind": kind, "cycle": int(cycle)}
    hang = _HANG.search(output)
    if hang:
        image, layer, cycle = hang.groups()
        report["hang"] = {"image": int(image), "last_layer": layer, "cycle": int(cycle)}
    return report


def _run_reporting(command, directory, timeout, on_progress):
    """Run a bench like :func:`_run`, calling ``on_progress(images)`` for each ``PROGRESS``
    line as it is printed; returns the whole output."""
    try:
        process = subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as error:
        raise _cannot_run(command, error) from None
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            progress = _PROGRESS.match(line)
            if progress:
                on_progress(int(progress.group(1)))
        process.wait()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out:
        raise _timed_out(command, timeout)
    return "".join(lines)


def run_bench(directory, simulator, first, count, variant="plain", plusargs=(),
              on_progress=None):
    """Run ``count`` images from image ``first`` on a built bench; its parsed verdict.

    ``on_progress``, when given, is called with the number of images checked so far, a few
    hundred times over the run, while it runs.
    """
    bench = BENCHES[simulator][variant]
    command = [f"./{bench}"] if simulator == "verilator" else ["vvp", "-n", bench]
    command += [f"+images={count}", f"+first={first}", *plusargs]
    timeout = STARTUP_SECONDS + SECONDS_PER_IMAGE[simulator] * count
    if on_progress is None:
        completed = _run(command, directory, timeout)
        return _parse(completed.stdout + completed.stderr)
    command.append(f"+progress={max(1, count // PROGRESS_LINES)}")
    return _parse(_run_reporting(command, directory, timeout, on_progress))


def _merge(parts, images):
    checked = sum(part["images"] for part in parts)
    mismatches = sum(part["mismatches"] for part in parts)
    first = next((part["first_mismatch"] for part in parts if part["first_mismatch"]), None)
    hang = next((part["hang"] for part in parts if part.get("hang")), None)
    return {"images": checked, "mismatches": mismatches, "first_mismatch": first,
            "hang": hang, "cycles": sum(part["cycles"] for part in parts),
            "bit_exact": mismatches == 0 and checked == images and hang is None}


def _record_wave(directory, simulator, first_image, count, report):
    """Re-run the range that holds the first mismatch (or the whole short run) with waveform
    dumping; the window ends a few cycles after the mismatch."""
    build_bench(directory, simulator, "wave")
    mismatch = report["first_mismatch"]
    if mismatch is not None:
        first_image, count = mismatch["image"], 1
        part = run_bench(directory, simulator, first_image, count)
        found = part["first_mismatch"] or mismatch
        until = found["cycle"] + 64
    else:
        until = WAVE_WINDOW + 1000 if count > 2 else 2 ** 64 - 1
    start = max(0, until - WAVE_WINDOW) if mismatch is not None else 0
    run_bench(directory, simulator, first_image, count, "wave",
              (f"+wave_from={start}", f"+wave_until={until}"))
    path = Path(directory) / ("wave.fst" if simulator == "verilator" else "wave.vcd")
    if not path.is_file():
        raise HwlenetError(f"the {simulator} bench wrote no waveform to {path}")
    return {"path": str(path), "from_cycle": start, "image": first_image,
            "open": f"gtkwave {path}"}


def check_design_identity(directory, manifest):
    """Refuse unless re-elaborating the exported artifact with this hwlenet gives, byte for
    byte, the exported ``hwlenet_top.v`` (the Amaranth bench simulates the re-elaborated
    design, so it must be the exported one)."""
    from amaranth.back import verilog

    from ..quant.artifact import load_artifact
    from ..rtl.accelerator import LeNetAccelerator
    from ..rtl.plan import plan_hardware

    directory = Path(directory)
    qmodel = load_artifact(directory / "model.npz")
    plan = plan_hardware(qmodel, manifest["array"]["rows"], manifest["array"]["cols"])
    from .emit import bench_parameters, traced_layers, vector_files

    layers = traced_layers(plan) if manifest["trace"] else []
    if (manifest["bench"] != bench_parameters(plan) or manifest["traced_layers"] != layers
            or manifest["vector_files"] != vector_files(plan, layers)):
        raise HwlenetError(f"{directory / 'manifest.json'}: its bench parameters, traced layers "
                           "or vector files do not match model.npz (edited, or exported by "
                           "another version); re-create the folder with hwlenet emit-verilog")
    design = LeNetAccelerator(plan=plan, trace=manifest["trace"])
    text = verilog.convert(design, name="hwlenet_top", emit_src=False)
    try:
        exported = (directory / "hwlenet_top.v").read_text()
    except OSError as error:
        raise HwlenetError(f"cannot read {directory / 'hwlenet_top.v'}: {error.strerror}") \
            from None
    if text != exported:
        raise HwlenetError(f"{directory / 'hwlenet_top.v'} is not what this hwlenet elaborates "
                           "from model.npz (edited, or exported by another version): the "
                           "amaranth simulator can only check an unmodified export; use "
                           "--simulator verilator or icarus")
    return design, plan


def bench_processes(simulator, jobs, images):
    """How many simulator processes :func:`run_cosim` runs for ``images`` images: ``jobs`` (one
    per CPU when None), at most one per image, and one for the in-process Amaranth bench."""
    jobs = resolve_jobs(jobs)
    return 1 if simulator == "amaranth" else min(jobs, images)


def run_cosim(directory, simulator="verilator", images=None, jobs=None, wave=False,
              progress=False):
    """Co-simulate an exported folder and compare the RTL with the numba simulator's vectors.

    Parameters
    ----------
    directory : path-like
        A folder written by :func:`hwlenet.verify.emit.emit_verilog` with test vectors.
    simulator : {"verilator", "icarus", "amaranth"}
        ``amaranth`` re-elaborates the design and refuses unless it is byte-identical to the
        exported ``hwlenet_top.v``.
    images : int, optional
        How many of the exported vectors to run (all by default).
    jobs : int, optional
        Simulator processes run in parallel on consecutive ranges of images (at most one per
        image); one per CPU that this process may run on by default.
    wave : bool
        Also write a waveform (Verilator FST, Icarus or Amaranth VCD) of a window of cycles
        ending at the first mismatch, or of the whole run when it is short.
    progress : bool
        Show a progress bar over the checked images on stderr, updated while the simulators run.

    Returns
    -------
    dict
        ``simulator``, ``images``, ``mismatches``, ``bit_exact``, ``cycles_per_image``,
        ``analytic_cycles_per_image`` (steady state) and its relative error, ``cycles`` and
        ``predicted_cycles`` (the exact model of this run, recorded at export),
        ``first_mismatch`` (image, layer, element, expected, actual, kind: value, missing,
        duplicate, range, image-range, collision (the layer names the feature buffer) or
        hang), ``hang`` (image and last layer that made
        progress), ``wave``, timing, and ``coverage`` (of tables and weights, recorded at
        export; only when the run checks every exported vector).
    """
    if simulator not in SIMULATORS:
        raise HwlenetError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    resolve_jobs(jobs)  # a bad count fails before the folder is read
    directory = Path(directory)
    manifest = read_export(directory)
    available = manifest["vectors"]
    images = check_image_count(manifest, directory, images)
    jobs = bench_processes(simulator, jobs, images)
    build_start = time.perf_counter()
    if simulator == "amaranth":
        design, plan = check_design_identity(directory, manifest)
    else:
        build_bench(directory, simulator)
    start = time.perf_counter()
    wave_info = None
    with tqdm(total=images, desc=f"cosim ({simulator})", unit="image",
              disable=not progress) as bar:
        lock = threading.Lock()

        def advance(count):
            with lock:
                bar.update(count)

        if simulator == "amaranth":
            from .amaranth_bench import run_amaranth_bench

            wave_path = directory / "wave.vcd" if wave else None
            parts = [run_amaranth_bench(directory, manifest, images, design=design, plan=plan,
                                        wave=wave_path, on_image=lambda: advance(1))]
            sizes = [images]
            if wave:
                wave_info = {"path": str(wave_path), "from_cycle": 0, "image": 0,
                             "open": f"gtkwave {wave_path}"}
        else:
            bounds = [images * j // jobs for j in range(jobs + 1)]
            sizes = [bounds[j + 1] - bounds[j] for j in range(jobs)]

            def run_range(j):
                shown = 0

                def show(checked):
                    nonlocal shown
                    advance(checked - shown)
                    shown = checked

                part = run_bench(directory, simulator, bounds[j], sizes[j],
                                 on_progress=show if progress else None)
                show(part["images"])
                return part

            with ThreadPoolExecutor(jobs) as pool:
                parts = list(pool.map(run_range, range(jobs)))
    seconds = time.perf_counter() - start
    merged = _merge(parts, images)
    if wave and simulator != "amaranth":
        wave_info = _record_wave(directory, simulator, 0, images, merged)
    checked = merged["images"]
    analytic = manifest["analytic"]["cycles_per_image"]
    measured = merged["cycles"] / checked if checked else None
    return {
        "simulator": simulator,
        **merged,
        "requested_images": images,
        "cycles_per_image": measured,
        "analytic_cycles_per_image": analytic,
        "steady_state_error": (measured - analytic) / analytic if measured else None,
        "predicted_cycles": sum(predicted_cycles(manifest, size) for size in sizes),
        "wave": wave_info,
        "build_seconds": start - build_start,
        "seconds": seconds,
        "images_per_second": checked / seconds if seconds else None,
        "array": manifest["array"],
        "jobs": jobs,
        "coverage": manifest["coverage"] if images == available else None,
    }
