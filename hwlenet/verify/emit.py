"""Export a self-contained Verilog folder: design, self-checking testbench, vectors, Makefile."""

import json
import shutil
import tempfile
from pathlib import Path

import jinja2
import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Shape

from .. import __version__
from ..errors import HwlenetError
from ..outputs import write_text
from ..quant.artifact import save_artifact
from ..sim import simulate
from ..rtl.accelerator import LeNetAccelerator, buffer_names, design_trace_layout
from ..rtl.loader import pixel_layout
from ..rtl.plan import plan_hardware
from ..rtl.streamer import result_layout
from .registers import Register, design_registers, hierarchical_reference, unread_registers
from .vectors import vector_file, write_vectors

__all__ = ["LINT_WAIVERS", "bench_parameters", "emit_verilog", "traced_layers", "vector_files",
           "write_register_faults"]

TEMPLATES = Path(__file__).parent / "templates"
#: ``verilator -Wall`` warnings waived for Amaranth's generated Verilog. WIDTH: Amaranth emits
#: operands at their own width and relies on Verilog's context-determined extension, which is
#: exactly Amaranth's arithmetic. CASEINCOMPLETE: a switch over job indices lists only the jobs
#: that exist; other values never occur and leave the defaults assigned before the case.
#: UNUSEDSIGNAL: Amaranth declares a wire for every field of a struct, used or not, and the
#: operands leaving the array's last row and column are unused by design. DECLFILENAME: all
#: modules sit in one file under hierarchical names.
LINT_WAIVERS = "-Wno-WIDTH -Wno-CASEINCOMPLETE -Wno-UNUSEDSIGNAL -Wno-DECLFILENAME"


def traced_layers(plan):
    """The artifact layers whose outputs the accelerator writes (and the trace shows)."""
    return [{"index": plan.qmodel.layers.index(job.out_layer), "name": job.out_layer.name,
             "size": int(np.prod(job.out_layer.out_shape))} for job in plan.jobs]


#: Exports of at most this many vectors also count visible weight-bit flips in their coverage
#: (linear in the vectors: about 5 s per 1000 images for LeNet-5's dense layers).
FLIP_COVERAGE_LIMIT = 1000


def bench_parameters(plan):
    """Numbers the testbench and the runners need, all from the plan: image and result sizes,
    the scoreboard's window of images in flight and the per-result watchdog."""
    results = result_layout(plan)
    return {
        "pixels": plan.image_pixels,
        "pixel_bits": _width(pixel_layout(plan)["pixel"].shape),
        "classes": results["logits"].shape.length,
        "label_bits": _width(results["label"].shape),
        "window": 2 * plan.cols + 4,
        "watchdog": 2 * plan.predicted_cycles(plan.cols) + 1000,
    }


def _width(shape):
    return Shape.cast(shape).width


def _field_offsets(layout):
    return {name: field.offset for name, field in layout}


def vector_files(plan, layers):
    """Manifest entries of every vector file: pixels, logits, classes, each stored layer."""
    bench = bench_parameters(plan)
    return ([vector_file("pixels", bench["pixel_bits"], False, bench["pixels"]),
             vector_file("logits", plan.logit_format.width, True, bench["classes"]),
             vector_file("labels", bench["label_bits"], False, 1)]
            + [vector_file(layer["name"], plan.value_width, True, layer["size"])
               for layer in layers])


def emit_verilog(qmodel, directory, rows=8, cols=8, images=None, cover=False, progress=False,
                 design_ready=None, trace=True):
    """Write the accelerator for ``qmodel`` and its co-simulation bench into ``directory``.

    Parameters
    ----------
    qmodel : QuantizedModel
    directory : path-like
        Created if missing; files in it are overwritten. ``manifest.json`` is removed first
        and written last, every file is written whole (through a temporary file), so that an
        interrupted export is never taken for a complete one.
    rows, cols : int
        Systolic array size.
    images : numpy.ndarray of uint8, shape (N, 28, 28), optional
        Test vectors; their expected logits, classes and per-layer outputs come from the
        numba simulator.
    cover : bool
        Append directed vectors (:func:`hwlenet.verify.coverage.directed_vectors`) so that
        the vectors index every reachable table entry the search can reach and exercise every
        weight it can.
    progress : bool
        Show progress bars.
    design_ready : callable, optional
        Called with the folder once the design and the bench sources are written, before the
        vectors are computed (a caller may start building the bench meanwhile).
    trace : bool
        Give the design its ``trace`` port, so that the bench checks every stored layer and
        not only the results. An FPGA build leaves it out (``False``); the bench then checks
        the logits and classes only, and :mod:`~hwlenet.verify.faultcheck` refuses the folder.

    Returns
    -------
    dict
        The manifest written to ``manifest.json``.
    """
    plan = plan_hardware(qmodel, rows, cols)
    directory = Path(directory)
    try:
        (directory / "vectors").mkdir(parents=True, exist_ok=True)
        (directory / "manifest.json").unlink(missing_ok=True)
    except OSError as error:
        raise HwlenetError(f"cannot create {directory}: {error.strerror}") from None
    images = np.zeros((0, *plan.image_shape[1:]), np.uint8) if images is None else images
    ordinary = len(images)
    if cover:
        from .coverage import directed_vectors

        images = np.concatenate([images, directed_vectors(qmodel, images, progress=progress)])
    count = len(images)
    layers = traced_layers(plan) if trace else []
    files = vector_files(plan, layers)
    width = plan.value_width
    logit_width = plan.logit_format.width
    model = plan.cycle_model()
    bench = bench_parameters(plan)
    roms = [rom.describe() for rom in plan.roms()]
    design = LeNetAccelerator(plan=plan, trace=trace)
    design_text = verilog.convert(design, name="hwlenet_top", emit_src=False)
    write_text(directory / "hwlenet_top.v", design_text)
    registers = design_registers(design_text)
    unread = unread_registers(design_text)
    environment = _environment()
    trace_fields = design_trace_layout(plan)
    context = {
        "version": __version__, "images": max(count, 1), "cols": cols, "layers": layers,
        "value_width": width, "logit_width": logit_width, **bench,
        "result_bits": result_layout(plan).size, "trace_bits": trace_fields.size,
        "trace": _field_offsets(trace_fields),
        "trace_layer_bits": _width(trace_fields["layer"].shape),
        "trace_image_bits": _width(trace_fields["image"].shape.elem_shape),
        "trace_index_bits": _width(trace_fields["index"].shape.elem_shape),
        "result": _field_offsets(result_layout(plan)), "roms": roms,
        "vector_files": files, "lint_waivers": LINT_WAIVERS, "has_trace": trace,
        "buffers": buffer_names(plan),
    }
    for template, target in (("tb.v.j2", "tb.v"), ("tb_top.v.j2", "tb_top.v"),
                             ("sim_main.cpp.j2", "sim_main.cpp"), ("Makefile.j2", "Makefile"),
                             ("README.md.j2", "README.md")):
        write_text(directory / target, environment.get_template(template).render(**context))
    write_register_faults(directory, [])
    if design_ready is not None:
        design_ready(directory)

    coverage = None
    if count:
        from .coverage import coverage_report

        coverage = coverage_report(qmodel, images, flips=count <= FLIP_COVERAGE_LIMIT)
        result = simulate(qmodel, images, trace=True, progress=progress)
        contents = {"pixels": images, "logits": result.logits, "labels": result.classes,
                    **{layer["name"]: result.trace[layer["name"]] for layer in layers}}
        _write_vector_files(directory, files, contents)
    save_artifact(qmodel, directory / "model.npz")
    manifest = {
        "hwlenet_version": __version__,
        "arch": qmodel.arch,
        "array": {"rows": rows, "cols": cols},
        "vectors": count,
        "directed_vectors": count - ordinary,
        "coverage": coverage,
        "analytic": model,
        "bench": bench,
        "predicted_cycles": {str(n): plan.predicted_cycles(n) for n in range(1, cols + 1)},
        "batch_cycles": plan.predicted_cycles(cols + 1) - plan.predicted_cycles(1),
        "trace": bool(trace),
        "traced_layers": layers,
        "buffers": buffer_names(plan),
        "vector_files": files,
        "memories": roms,
        "registers": [{"name": register.name, "path": list(register.path),
                       "block": register.block, "width": register.width,
                       "unread": register.path in unread}
                      for register in registers],
        "widths": {"weight": plan.weight_width, "operand": plan.operand_width,
                   "accumulator": plan.accumulator_width, "value": width,
                   "logit": logit_width},
        "artifact": qmodel.manifest(),
    }
    write_text(directory / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _environment():
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def write_register_faults(directory, registers):
    """Write ``register_faults.vh``, the register faults the fault build of the bench can
    inject: one per entry of ``registers``, ``(index, entry)`` pairs of the manifest's
    ``registers`` list. Only these registers get a second driver in that build, which keeps its
    Verilator model small and fast; an export starts with none."""
    chosen = [{"index": index, "name": register["name"], "width": register["width"],
               "reference": hierarchical_reference(Register(tuple(register["path"]),
                                                            register["width"]))}
              for index, register in registers]
    text = _environment().get_template("register_faults.vh.j2").render(
        version=__version__, registers=chosen)
    path = Path(directory) / "register_faults.vh"
    try:
        unchanged = path.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:  # an unchanged file keeps the fault build up to date
        write_text(path, text)


def _write_vector_files(directory, files, contents):
    """Write every vector file into a staging folder inside ``directory``, then rename each
    into ``directory/vectors``: none is ever seen half-written."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=".vectors-", dir=directory))
    except OSError as error:
        raise HwlenetError(f"cannot write {directory}: {error.strerror}") from None
    try:
        (staging / "vectors").mkdir()
        for entry in files:
            write_vectors(staging, entry, contents[entry["name"]])
        for entry in files:
            (staging / entry["path"]).replace(directory / entry["path"])
    except OSError as error:
        raise HwlenetError(f"cannot write {directory / 'vectors'}: {error.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
