"""One self-contained HTML page for an export folder and the results found beside it.

:func:`write_report` (``hwlenet report DIR``) renders a page that needs no network: the plots
are embedded as ``data:`` URIs, the style sheet is inline, and the page has no JavaScript.

Where the results are looked for
--------------------------------
``DIR`` must be a folder written by ``hwlenet emit-verilog``: its ``manifest.json`` gives the
model, the per-layer formats, the cycle model with the utilization per layer and the coverage
of the exported vectors. The other results are looked for by name, first in ``DIR``, then in
its parent (the layout of ``make demo``: the export is ``demo/rtl``, the results sit in
``demo``):

=================== =================================================================
``evaluate.json``   ``hwlenet evaluate --json``: float accuracy
``simulate.json``   ``hwlenet simulate --json``: float and fixed accuracy, SQNR per layer
``layers.png``      ``hwlenet simulate --plot``: SQNR and error per layer
``sweep_bits.json`` ``scripts/sweep_bits.py --json``: accuracy against bit width
``sweep_bits.png``  ``scripts/sweep_bits.py --plot`` (its default name)
``cosim.json``      ``hwlenet cosim --json``: the co-simulation verdict
``faultcheck.json`` ``hwlenet faultcheck --json``: the fault campaign
=================== =================================================================

and synthesis results in ``DIR/synth/TARGET/report.json`` (written by ``hwlenet synth``).

A result that is missing, cannot be read, or belongs to another export is left out with a
one-line note saying which; only a folder that is not an export is an error. A result belongs
to this export when: (evaluate) its model and architecture are the artifact's; (simulate) its
architecture and layers are the artifact's and the artifact file it names, when still there,
is byte-identical to ``DIR/model.npz``; (cosim) its array and steady-state cycles are the
manifest's, and its recorded cycle prediction is the manifest's for the images and processes it
ran; (faultcheck) its vector count and ROM bits are the manifest's; (synthesis) the SHA-256 of
the Verilog it synthesized is that of ``DIR/hwlenet_top.v``.
"""

import base64
import hashlib
import json
import os
from pathlib import Path

import jinja2

from .outputs import check_writable, write_text

__all__ = ["REPORT_FILE", "RESULT_FILES", "build_report", "render_report", "write_report"]

#: The page written into the export folder when no other path is given.
REPORT_FILE = "report.html"
#: The result files looked for in the export folder, then in its parent, by role.
RESULT_FILES = {
    "evaluate": "evaluate.json",
    "simulate": "simulate.json",
    "layers_plot": "layers.png",
    "sweep": "sweep_bits.json",
    "sweep_plot": "sweep_bits.png",
    "cosim": "cosim.json",
    "faultcheck": "faultcheck.json",
}
#: Where ``hwlenet synth`` leaves each target's results, relative to the export folder.
SYNTH_REPORTS = "synth/*/report.json"

TEMPLATES = Path(__file__).parent / "templates"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Files larger than this are not read (a report never needs more).
_MAX_RESULT_BYTES = 64 << 20
_MISSED_RUNS_SHOWN = 6


class _Unusable(Exception):
    """A result file that is left out of the page; the message says why."""


# ----------------------------------------------------------------------------------------------
# Formatting


def _percent(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}%}"


def _count(value):
    return "n/a" if value is None else f"{value:,}"


def _decimal(value, digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _format(fmt):
    """A fixed-point format dict as ``s8.6`` (sign, width, fraction bits)."""
    if not fmt:
        return "-"
    return f"{'s' if fmt['signed'] else 'u'}{fmt['width']}.{fmt['frac']}"


def _runs(runs, limit=_MISSED_RUNS_SHOWN):
    text = ", ".join(f"{low}..{high}" for low, high in runs[:limit])
    if len(runs) > limit:
        text += f" and {len(runs) - limit} more runs"
    return text


# ----------------------------------------------------------------------------------------------
# Finding and reading the results


class _Sources:
    """Looks up result files in the export folder, then its parent, and reads them."""

    def __init__(self, directory):
        self.directory = directory
        self.folders = [directory]
        parent = directory.resolve().parent
        if parent != directory.resolve():
            self.folders.append(parent)

    def shown(self, path):
        """``path`` relative to the export folder, as the page names it."""
        return os.path.relpath(path, self.directory)

    def where(self, name):
        """Where ``name`` was looked for, for a note."""
        return " or ".join(self.shown(folder / name) for folder in self.folders)

    def find(self, role):
        """The path of the result file for ``role``, or None."""
        name = RESULT_FILES[role]
        for folder in self.folders:
            path = folder / name
            if path.is_file():
                return path
        return None

    def read_bytes(self, path):
        try:
            if path.stat().st_size > _MAX_RESULT_BYTES:
                raise _Unusable(f"{self.shown(path)} is larger than "
                                f"{_MAX_RESULT_BYTES >> 20} MiB")
            return path.read_bytes()
        except OSError as error:
            raise _Unusable(f"cannot read {self.shown(path)}: {error.strerror}") from None

    def read_json(self, path, kind=dict):
        try:
            payload = json.loads(self.read_bytes(path).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            reason = " ".join(str(error).split())[:100]
            raise _Unusable(f"{self.shown(path)} is not valid JSON ({reason})") \
                from None
        if not isinstance(payload, kind):
            raise _Unusable(f"{self.shown(path)} holds a JSON {type(payload).__name__}, not "
                            f"the {kind.__name__} its writer produces")
        return payload

    def missing(self, role):
        """The note for a result of ``role`` that is nowhere to be found."""
        return f"no {RESULT_FILES[role]} (looked in {self.where(RESULT_FILES[role])})"

    def image(self, role):
        """``(data URI, shown name)`` of a PNG result, or ``(None, note)``."""
        path = self.find(role)
        if path is None:
            return None, self.missing(role)
        try:
            payload = self.read_bytes(path)
        except _Unusable as error:
            return None, str(error)
        if not payload.startswith(_PNG_SIGNATURE):
            return None, f"{self.shown(path)} is not a PNG image"
        return "data:image/png;base64," + base64.b64encode(payload).decode("ascii"), \
            self.shown(path)


def _section(section_id, title, data=None, note=None, sources=()):
    return {"id": section_id, "title": title, "data": data, "note": note,
            "sources": list(sources)}


def _guarded(section_id, title, build, *arguments):
    """Run a section builder; a result it cannot use becomes the section's note."""
    try:
        return build(*arguments)
    except _Unusable as error:
        return _section(section_id, title, note=str(error))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        detail = f"{type(error).__name__} {error}" if str(error) else type(error).__name__
        return _section(section_id, title,
                        note=f"unexpected content ({detail[:100]})")


# ----------------------------------------------------------------------------------------------
# Sections


def _model_section(directory, manifest):
    artifact = manifest.get("artifact") or {}
    provenance = artifact.get("provenance") or {}
    calibration = provenance.get("calibration") or {}
    array = manifest["array"]
    facts = [
        ("export", str(directory)),
        ("architecture", str(manifest.get("arch") or artifact.get("arch") or "unknown")),
        ("model", str(provenance.get("model", "unknown"))),
        ("widths", f"W{provenance['weight_bits']}A{provenance['act_bits']}"
         if "weight_bits" in provenance and "act_bits" in provenance else "see the formats"),
        ("rounding / overflow", f"{provenance.get('rounding', '?')} / "
                                f"{provenance.get('overflow', '?')}"),
        ("calibration", f"{calibration['images']} {provenance.get('calibration_split', '')} "
                        f"images, {calibration.get('method', '?')}".replace("  ", " ")
         if "images" in calibration else "not recorded"),
        ("systolic array", f"{array['rows']}x{array['cols']} "
                           f"({array['rows'] * array['cols']} MAC slots)"),
        ("trace port", "yes: the bench checks every stored layer" if manifest["trace"]
         else "no: the bench checks the results only"),
        ("test vectors", f"{manifest['vectors']} ({manifest['directed_vectors']} directed)"),
        ("datapath widths", ", ".join(f"{name} {width}" for name, width in
                                      sorted(manifest["widths"].items()))),
        ("hwlenet version", str(manifest.get("hwlenet_version", "unknown"))),
    ]
    return _section("model", "Model", {"facts": facts}, sources=["manifest.json"])


def _formats_section(manifest):
    title = "Formats per layer"
    artifact = manifest.get("artifact")
    if not isinstance(artifact, dict) or not isinstance(artifact.get("layers"), list):
        return _section("formats", title, note="manifest.json describes no artifact layers "
                                               "(exported by an older hwlenet)")
    rows = []
    for layer in artifact["layers"]:
        accumulator = layer.get("accumulator")
        rows.append({
            "name": layer["name"], "kind": layer["kind"],
            "shape": (" -> ".join("x".join(map(str, shape)) for shape in
                                  (layer["in_shape"], layer["out_shape"]))),
            "input": _format(layer.get("input_format")),
            "weight": _format(layer.get("weight_format")),
            "bias": _format(layer.get("bias_format")),
            "accumulator": (f"{accumulator['width']} bits, frac {accumulator['frac']}"
                            if accumulator else "-"),
            "pre": _format(layer.get("pre_format")),
            "activation": str(layer.get("activation") or "-"),
            "output": _format(layer.get("output_format")),
        })
    return _section("formats", title, {"rows": rows, "input": _format(
        artifact.get("input_format"))}, sources=["manifest.json"])


def _layer_names(manifest):
    artifact = manifest.get("artifact") or {}
    return [layer.get("name") for layer in artifact.get("layers") or []]


def _evaluate_result(sources, manifest):
    path = sources.find("evaluate")
    if path is None:
        return None, sources.missing("evaluate")
    try:
        result = sources.read_json(path)
        arch = manifest.get("arch")
        model = ((manifest.get("artifact") or {}).get("provenance") or {}).get("model")
        if arch and result["arch"] != arch:
            raise _Unusable(f"{sources.shown(path)} is for a {result['arch']} model, the "
                            f"export is {arch}")
        if model and result["model"] != model:
            raise _Unusable(f"{sources.shown(path)} is for {result['model']}, the export "
                            f"quantizes {model}")
        return {"accuracy": _percent(result["accuracy"], 2), "images": _count(result["images"]),
                "source": sources.shown(path)}, None
    except _Unusable as error:
        return None, str(error)
    except (KeyError, TypeError, ValueError) as error:
        return None, f"{sources.shown(path)} lacks {error} or has it of the wrong type"


def _same_artifact(simulate_path, named, directory):
    """Whether the artifact a simulate report names is ``DIR/model.npz``: True when a file it
    may mean (the path as written, from the current folder or from the report's folder, or
    the same name beside the report) is byte-identical to it, False when such files exist and
    none is, None when none is there to compare."""
    named = Path(str(named))
    candidates = [named] if named.is_absolute() else [Path.cwd() / named,
                                                      simulate_path.parent / named]
    candidates.append(simulate_path.parent / named.name)
    try:
        exported = (directory / "model.npz").read_bytes()
    except OSError:
        return None
    found = False
    for candidate in candidates:
        try:
            if candidate.is_file():
                found = True
                if candidate.read_bytes() == exported:
                    return True
        except OSError:
            continue
    return False if found else None


def _accuracy_section(sources, manifest, directory):
    title = "Accuracy"
    evaluate, evaluate_note = _evaluate_result(sources, manifest)
    notes = [] if evaluate else [evaluate_note]
    simulate, caveats = None, []
    path = sources.find("simulate")
    if path is None:
        notes.append(f"{sources.missing('simulate')}: no fixed-point accuracy or SQNR")
    else:
        try:
            simulate = _simulate_result(sources, path, manifest, directory)
            if simulate["caveat"]:
                caveats.append(simulate["caveat"])
        except _Unusable as error:
            notes.append(str(error))
        except (KeyError, TypeError, ValueError) as error:
            notes.append(f"{sources.shown(path)} lacks {error} or has it of the wrong type")
    plot, plot_source = sources.image("layers_plot")
    if plot is None:
        notes.append(plot_source)
    if not (evaluate or simulate or plot):
        return _section("accuracy", title, note="; ".join(notes))
    used = [entry["source"] for entry in (evaluate, simulate) if entry]
    if plot:
        used.append(plot_source)
    return _section("accuracy", title, {"evaluate": evaluate, "simulate": simulate,
                                        "plot": plot, "notes": notes, "caveats": caveats},
                    sources=used)


def _simulate_result(sources, path, manifest, directory):
    result = sources.read_json(path)
    shown = sources.shown(path)
    arch = manifest.get("arch")
    if arch and result["arch"] != arch:
        raise _Unusable(f"{shown} is for a {result['arch']} model, the export is {arch}")
    names = [row["name"] for row in result["layers"]]
    expected = _layer_names(manifest)
    if expected and names != expected:
        raise _Unusable(f"{shown} has layers {', '.join(map(str, names))}, the export "
                        f"{', '.join(map(str, expected))}")
    same = _same_artifact(path, result["artifact"], directory)
    if same is False:
        raise _Unusable(f"{shown} simulated {result['artifact']}, which differs from "
                        "model.npz")
    caveat = None if same else (f"{shown} names {result['artifact']}, which is not there to "
                                "compare with model.npz")
    layers = [{"name": row["name"], "sqnr": _decimal(row["sqnr_db"], 2),
               "error": f"{row['max_abs_error']:.4g}"} for row in result["layers"]]
    return {"images": _count(result["images"]),
            "float_accuracy": _percent(result["float_accuracy"], 2),
            "fixed_accuracy": _percent(result["fixed_accuracy"], 2),
            "agreement": _percent(result["agreement"], 2),
            "layers": layers, "source": shown, "caveat": caveat}


def _sweep_section(sources, manifest):
    title = "Accuracy against bit width"
    notes, rows, used = [], None, []
    path = sources.find("sweep")
    if path is None:
        notes.append(sources.missing("sweep"))
    else:
        try:
            provenance = (manifest.get("artifact") or {}).get("provenance") or {}
            bits = provenance.get("weight_bits")
            this = (provenance.get("model"), bits if bits == provenance.get("act_bits")
                    else None)
            rows = [{"model": str(row["model"]), "bits": int(row["bits"]),
                     "float": _percent(row["float_accuracy"], 2),
                     "fixed": _percent(row["fixed_accuracy"], 2),
                     "agreement": _percent(row.get("agreement"), 2),
                     "this": (row["model"], row["bits"]) == this}
                    for row in sources.read_json(path, list)]
            used.append(sources.shown(path))
        except _Unusable as error:
            notes.append(str(error))
        except (KeyError, TypeError, ValueError) as error:
            notes.append(f"{sources.shown(path)}: a row lacks {error} or has it of the wrong "
                         "type")
    plot, plot_source = sources.image("sweep_plot")
    if plot is None:
        notes.append(plot_source)
    else:
        used.append(plot_source)
    if not (rows or plot):
        return _section("sweep", title, note="; ".join(notes) + " (write them with "
                        "scripts/sweep_bits.py --plot sweep_bits.png --json sweep_bits.json)")
    return _section("sweep", title, {"rows": rows, "plot": plot, "notes": notes}, sources=used)


def _cycles_section(manifest):
    analytic = manifest["analytic"]
    array = manifest["array"]
    slots = array["rows"] * array["cols"]
    total = analytic["cycles_per_image"]
    layers = [{"name": row["name"], "macs": _count(row["macs"]),
               "nonzero_macs": _count(row["nonzero_macs"]),
               "cycles": _decimal(row["cycles_per_image"]),
               "share": _percent(row["cycles_per_image"] / total),
               "utilization": _percent(row["utilization"]),
               "nonzero_utilization": _percent(row["nonzero_utilization"]),
               "bar": round(100 * row["utilization"], 1)}
              for row in analytic["layers"]]
    totals = {"macs": _count(analytic["macs_per_image"]),
              "nonzero_macs": _count(analytic["nonzero_macs_per_image"]),
              "cycles": _decimal(total), "utilization": _percent(analytic["utilization"]),
              "nonzero_utilization": _percent(analytic["nonzero_utilization"]),
              "bar": round(100 * analytic["utilization"], 1)}
    predicted = [(int(size), _count(cycles)) for size, cycles in
                 sorted(manifest["predicted_cycles"].items(), key=lambda item: int(item[0]))]
    return _section("cycles", "Cycle model and utilization", {
        "array": f"{array['rows']}x{array['cols']}", "slots": slots, "layers": layers,
        "totals": totals, "batch_cycles": _count(manifest["batch_cycles"]),
        "cols": array["cols"], "predicted": predicted}, sources=["manifest.json"])


def _cosim_section(sources, manifest):
    from .verify.cosim import predicted_cycles

    title = "Co-simulation"
    path = sources.find("cosim")
    if path is None:
        return _section("cosim", title, note=f"{sources.missing('cosim')}; run hwlenet "
                        "cosim DIR --json cosim.json")
    shown = sources.shown(path)
    report = sources.read_json(path)
    if report["array"] != manifest["array"]:
        array = report["array"]
        raise _Unusable(f"{shown} is for a {array['rows']}x{array['cols']} array, the export "
                        f"is {manifest['array']['rows']}x{manifest['array']['cols']}")
    if report["analytic_cycles_per_image"] != manifest["analytic"]["cycles_per_image"]:
        raise _Unusable(f"{shown} is for another export (its steady state is "
                        f"{report['analytic_cycles_per_image']} cycles per image, the "
                        f"manifest's {manifest['analytic']['cycles_per_image']})")
    requested = int(report["requested_images"])
    if not 0 < requested <= manifest["vectors"]:
        raise _Unusable(f"{shown} ran {requested} images, the export has "
                        f"{manifest['vectors']} vectors")
    jobs = max(1, min(int(report["jobs"]), requested))
    sizes = [requested * (j + 1) // jobs - requested * j // jobs for j in range(jobs)]
    expected = sum(predicted_cycles(manifest, size) for size in sizes)
    if report["predicted_cycles"] != expected:
        raise _Unusable(f"{shown} recorded a prediction of {report['predicted_cycles']} cycles, "
                        f"the manifest predicts {expected} for its {requested} images; it is "
                        "for another export")
    if report["hang"]:
        verdict, verdict_class = "HANG", "bad"
    elif report["bit_exact"]:
        verdict, verdict_class = "bit-exact", "good"
    else:
        verdict, verdict_class = "MISMATCH", "bad"
    cycles = report["cycles"]
    if cycles == report["predicted_cycles"]:
        timing = "exactly as the cycle model predicts"
    else:
        timing = f"the cycle model predicts {_count(report['predicted_cycles'])}"
    facts = [
        ("simulator", f"{report['simulator']} ({report['jobs']} "
                      f"process{'es' if report['jobs'] != 1 else ''})"),
        ("images checked", f"{report['images']} of {requested} requested "
                           f"({manifest['vectors']} exported)"),
        ("mismatches", _count(report["mismatches"])),
        ("cycles", f"{_count(cycles)}: {timing}"),
        ("cycles per image", f"{_decimal(report['cycles_per_image'])} measured, "
                             f"{_decimal(report['analytic_cycles_per_image'])} steady state "
                             f"({_percent(report['steady_state_error'], 2)} apart)"
         if report["cycles_per_image"] is not None else "n/a (no image checked)"),
        ("speed", f"{_decimal(report['images_per_second'])} images/s, build "
                  f"{_decimal(report['build_seconds'])} s"
         if report.get("images_per_second") is not None else "n/a"),
    ]
    first = report["first_mismatch"]
    mismatch = None
    if first and first.get("kind") != "hang":
        mismatch = [("image", first["image"]), ("layer", first["layer"]),
                    ("element", first["element"]), ("expected", first["expected"]),
                    ("got", first["actual"]), ("kind", first["kind"]),
                    ("cycle", _count(first["cycle"]))]
    hang = report["hang"]
    hang_text = None
    if hang:
        hang_text = (f"no result for image {hang['image']} within the watchdog; the last layer "
                     f"that made progress is {hang['last_layer']} (cycle {_count(hang['cycle'])})")
    wave = report.get("wave")
    return _section("cosim", title, {
        "verdict": verdict, "verdict_class": verdict_class, "facts": facts,
        "mismatch": mismatch, "hang": hang_text,
        "wave": f"{wave['path']} (open: {wave['open']})" if wave else None,
        "partial": report["images"] < manifest["vectors"]}, sources=[shown])


def _coverage_section(manifest):
    title = "Coverage of the vectors"
    coverage = manifest["coverage"]
    if not coverage or not manifest["vectors"]:
        return _section("coverage", title, note="the export has no test vectors (emit-verilog "
                                                "--vectors N); no coverage")
    rows = []
    for row in coverage["layers"]:
        table, weights = row["table"], row["weights"]
        if not (table or weights):
            continue
        entry = {"name": row["name"], "table": None, "weights": None, "missed": None,
                 "unreachable": []}
        if table:
            entry["table"] = (f"{table['hit']:,}/{table['reachable']:,} reachable "
                              f"({_percent(table['fraction_of_reachable'])}; "
                              f"{table['entries']:,} entries)")
            entry["missed"] = _runs(table["missed"]) if table["missed"] else None
            entry["unreachable"] = [f"{run['low']}..{run['high']}: {run['reason']}"
                                    for run in table["unreachable"]]
        if weights:
            entry["weights"] = (f"{weights['exercised']:,}/{weights['words']:,} exercised "
                                f"({_percent(weights['fraction'])})")
            if weights["live"] != weights["exercised"]:
                entry["weights"] += (f", {weights['live']:,} live "
                                     f"({_percent(weights['live_fraction'])})")
        rows.append(entry)
    tables = [row["table"] for row in coverage["layers"] if row["table"]]
    total = None
    if tables:
        hit = sum(table["hit"] for table in tables)
        reachable = sum(table["reachable"] for table in tables)
        total = (f"{hit:,}/{reachable:,} reachable table entries "
                 f"({_percent(hit / reachable if reachable else None, 2)})")
    return _section("coverage", title, {"images": coverage["images"],
                                        "directed": manifest["directed_vectors"],
                                        "rows": rows, "total": total},
                    sources=["manifest.json"])


def _faults_section(sources, manifest):
    title = "Fault campaign"
    path = sources.find("faultcheck")
    if path is None:
        return _section("faults", title, note=f"{sources.missing('faultcheck')}; run hwlenet "
                        "faultcheck DIR --json faultcheck.json")
    shown = sources.shown(path)
    report = sources.read_json(path)
    rom_bits = sum(memory["depth"] * memory["width"] for memory in manifest["memories"])
    if report["vectors"] != manifest["vectors"] or report["rom_bits"] != rom_bits:
        raise _Unusable(f"{shown} is for another export ({report['vectors']} vectors and "
                        f"{report['rom_bits']} ROM bits, the manifest {manifest['vectors']} "
                        f"and {rom_bits})")
    summary = report["summary"]
    statuses = ("caught", "missed", "unobservable")

    def tally(counts):
        return [(name, [_count(values.get(status, 0)) for status in statuses])
                for name, values in sorted(counts.items())]

    missed = [f"{fault['memory']}[{fault['address']}] bit {fault['bit']} ({fault['layer']} "
              f"{fault['role']}): {fault['reason']}"
              for fault in report["faults"] if fault["status"] == "missed"]
    verdict_class = "good" if summary["missed"] == 0 else "bad"
    registers = report.get("register_summary") or {"total": 0}
    register_line = None
    if registers["total"]:
        register_line = (f"{registers['total']} register bits held stuck at 0 or 1 (of "
                         f"{report['register_bits']:,}): {registers['caught']} caught, "
                         f"{registers['missed']} missed ({registers['missed_activated']} of "
                         "them activated by the vectors), "
                         f"{registers.get('unobservable', 0)} unobservable (unread registers)")
        missed += [f"register {fault['register']} bit {fault['bit']} stuck at "
                   f"{fault['stuck_at']}: {fault['reason']}"
                   for fault in report["register_faults"] if fault["status"] == "missed"]
    return _section("faults", title, {
        "registers": register_line,
        "by_block": tally(report.get("by_block", {})),
        "summary": (f"{summary['total']} single-bit faults over {rom_bits:,} ROM bits "
                    f"({report['simulator']}, seed {report['seed']}): {summary['caught']} "
                    f"caught, {summary['missed']} missed, {summary['unobservable']} "
                    "unobservable"),
        "caught": _percent(summary["caught_fraction_of_observable"]),
        "verdict_class": verdict_class, "statuses": statuses,
        "by_role": tally(report["by_role"]), "by_layer": tally(report["by_layer"]),
        "missed": missed}, sources=[shown])


def _synth_section(sources, directory, manifest):
    title = "Synthesis"
    paths = sorted(directory.glob(SYNTH_REPORTS))
    if not paths:
        return _section("synthesis", title, note=f"no {SYNTH_REPORTS} in the export; run "
                                                 "hwlenet synth DIR --target TARGET")
    try:
        design_hash = hashlib.sha256((directory / "hwlenet_top.v").read_bytes()).hexdigest()
    except OSError:
        design_hash = None
    targets, notes = [], []
    for path in paths:
        shown = sources.shown(path)
        try:
            targets.append(_synth_target(sources, path, manifest, design_hash))
        except _Unusable as error:
            notes.append(str(error))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            notes.append(f"{shown} lacks {error} or has it of the wrong type")
    if not targets:
        return _section("synthesis", title, note="; ".join(notes))
    return _section("synthesis", title, {"targets": targets, "notes": notes},
                    sources=[target["source"] for target in targets])


def _synth_target(sources, path, manifest, design_hash):
    shown = sources.shown(path)
    report = sources.read_json(path)
    design = report["design"]
    if design_hash is None or design["sha256"] != design_hash:
        raise _Unusable(f"{shown} synthesized another hwlenet_top.v (its SHA-256 differs from "
                        "the export's)")
    if design["array"] != manifest["array"]:
        raise _Unusable(f"{shown} is for another array")
    where = (f"{report['device']} {report['package']}"
             + (f" speed {report['speed_grade']}" if report.get("speed_grade") else "")
             if report.get("device") else "Yosys generic cells")
    facts = [("device", where), ("trace port", "kept" if report["trace"] else "removed")]
    if report.get("fmax_mhz") is not None:
        met = "met" if report["meets_frequency"] else "not met"
        facts.append(("Fmax", f"{report['fmax_mhz']:.2f} MHz (constraint "
                              f"{report['frequency_mhz']:g} MHz {met})"))
    facts.append(("cycles per image", f"{_decimal(report['cycles_per_image'])} "
                                      f"({report.get('cycles_source', '')})"))
    if report.get("images_per_second") is not None:
        facts.append(("images per second", _decimal(report["images_per_second"], 0)))
    path_info = report.get("critical_path")
    if path_info:
        facts.append(("critical path", f"{path_info['delay_ns']:.1f} ns: {path_info['from']} "
                                       f"-> {path_info['to']}"))
    if report.get("fits") is not None:
        facts.append(("fits", "yes" if report["fits"] else "no"))
    resources = [{"label": entry["label"], "used": _count(entry["used"]),
                  "available": _count(entry["available"]),
                  "utilization": _percent(entry["utilization"])}
                 for _, entry in sorted(report["resources"].items())]
    cells = None
    if not resources:
        ranked = sorted(report["cells"].items(), key=lambda item: (-item[1], item[0]))
        cells = (f"flip-flops {_count(report['flip_flops'])}, memories "
                 f"{_count(report['memories'])} ({_count(report['memory_bits'])} bits); "
                 + ", ".join(f"{name} {count:,}" for name, count in ranked[:12])
                 + (f" and {len(ranked) - 12} more cell types" if len(ranked) > 12 else ""))
    fits_class = {True: "good", False: "bad"}.get(report.get("fits"), "")
    return {"target": str(report["target"]), "facts": facts, "resources": resources,
            "cells": cells, "fits_class": fits_class, "source": shown}


# ----------------------------------------------------------------------------------------------
# The page


def build_report(directory):
    """Everything the page shows for an export folder, as a template context.

    Parameters
    ----------
    directory : path-like
        A folder written by ``hwlenet emit-verilog``.

    Returns
    -------
    dict
        ``title``, ``directory`` and ``sections``: a list of dicts with ``id`` (model,
        formats, accuracy, sweep, cycles, cosim, coverage, faults, synthesis), ``title``,
        ``data`` (None when the section is left out), ``note`` (why it is left out, or None)
        and ``sources`` (the files it shows, relative to ``directory``).

    Raises
    ------
    HwlenetError
        When ``directory`` is not an export folder or its manifest is damaged (checked by
        :func:`hwlenet.verify.cosim.read_export`).
    """
    from .verify.cosim import read_export

    directory = Path(directory)
    manifest = read_export(directory)
    sources = _Sources(directory)
    array = manifest["array"]
    sections = [
        _guarded("model", "Model", _model_section, directory, manifest),
        _guarded("formats", "Formats per layer", _formats_section, manifest),
        _guarded("accuracy", "Accuracy", _accuracy_section, sources, manifest, directory),
        _guarded("sweep", "Accuracy against bit width", _sweep_section, sources, manifest),
        _guarded("cycles", "Cycle model and utilization", _cycles_section, manifest),
        _guarded("cosim", "Co-simulation", _cosim_section, sources, manifest),
        _guarded("coverage", "Coverage of the vectors", _coverage_section, manifest),
        _guarded("faults", "Fault campaign", _faults_section, sources, manifest),
        _guarded("synthesis", "Synthesis", _synth_section, sources, directory, manifest),
    ]
    arch = manifest.get("arch") or "model"
    return {"title": f"hwlenet report: {arch} on a {array['rows']}x{array['cols']} array",
            "directory": str(directory), "sections": sections}


def render_report(context):
    """The HTML page for a :func:`build_report` context (no network, no JavaScript)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    return environment.get_template("report.html.j2").render(**context)


def write_report(directory, out=None, option="--out"):
    """Write the report page of an export folder.

    Parameters
    ----------
    directory : path-like
        A folder written by ``hwlenet emit-verilog``; the results are looked for as the module
        docstring says.
    out : path-like, optional
        The HTML file to write (default: ``directory/report.html``), written whole or not at
        all.
    option : str
        The command-line option that named ``out``, quoted in errors.

    Returns
    -------
    (pathlib.Path, list of str)
        The path written, and one note per section left out (``"title: why"``).

    Raises
    ------
    HwlenetError
        When ``directory`` is not an export folder, or ``out`` cannot be written.
    """
    directory = Path(directory)
    context = build_report(directory)
    if out is None:
        out, option = directory / REPORT_FILE, None
    out = Path(out)
    check_writable(out, option)
    write_text(out, render_report(context), option)
    notes = [f"{section['title']}: {section['note']}" for section in context["sections"]
             if section["data"] is None]
    return out, notes
