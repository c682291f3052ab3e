"""Export a self-contained Verilog folder: design, self-checking testbench, vectors, Makefile."""

import json
from pathlib import Path

import jinja2
import numpy as np
from amaranth.back import verilog

from .. import __version__
from ..errors import HwlenetError
from ..quant.artifact import save_artifact
from ..sim import simulate
from .accelerator import LeNetAccelerator, result_layout, trace_layout
from .plan import plan_hardware
from .postproc import value_width

__all__ = ["LINT_WAIVERS", "emit_verilog", "traced_layers"]

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


def _hex_lines(values, bits):
    digits = -(-bits // 4)
    mask = (1 << bits) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in np.asarray(values).ravel())


def _field_offsets(layout):
    return {name: field.offset for name, field in layout}


def emit_verilog(qmodel, directory, rows=8, cols=8, images=None, progress=False):
    """Write the accelerator for ``qmodel`` and its co-simulation bench into ``directory``.

    Parameters
    ----------
    qmodel : QuantizedModel
    directory : path-like
        Created if missing; files in it are overwritten.
    rows, cols : int
        Systolic array size.
    images : numpy.ndarray of uint8, shape (N, 28, 28), optional
        Test vectors; their expected logits, classes and per-layer outputs come from the
        numba simulator.

    Returns
    -------
    dict
        The manifest written to ``manifest.json``.
    """
    plan = plan_hardware(qmodel, rows, cols)
    directory = Path(directory)
    try:
        (directory / "vectors").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HwlenetError(f"cannot create {directory}: {error.strerror}") from None
    design = LeNetAccelerator(plan=plan)
    (directory / "hwlenet_top.v").write_text(
        verilog.convert(design, name="hwlenet_top", emit_src=False))

    images = np.zeros((0, 28, 28), np.uint8) if images is None else images
    count = len(images)
    layers = traced_layers(plan)
    width = value_width(plan)
    logit_width = plan.logit_format.width
    vectors = directory / "vectors"
    if count:
        result = simulate(qmodel, images, trace=True, progress=progress)
        (vectors / "pixels.hex").write_text(_hex_lines(images, 8))
        (vectors / "logits.hex").write_text(_hex_lines(result.logits, logit_width))
        (vectors / "labels.hex").write_text(_hex_lines(result.classes, 4))
        for layer in layers:
            (vectors / f"{layer['name']}.hex").write_text(
                _hex_lines(result.trace[layer["name"]], width))

    model = plan.cycle_model()
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     keep_trailing_newline=True, trim_blocks=True,
                                     lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    context = {
        "version": __version__, "images": max(count, 1), "cols": cols, "layers": layers,
        "value_width": width, "logit_width": logit_width,
        "result_bits": result_layout(plan).size, "trace_bits": trace_layout(plan).size,
        "trace": _field_offsets(trace_layout(plan)),
        "timeout_per_image": int(4 * model["cycles_per_image"]) + 4000,
        "lint_waivers": LINT_WAIVERS,
    }
    for template, target in (("tb.v.j2", "tb.v"), ("tb_top.v.j2", "tb_top.v"),
                             ("sim_main.cpp.j2", "sim_main.cpp"), ("Makefile.j2", "Makefile"),
                             ("README.md.j2", "README.md")):
        (directory / target).write_text(environment.get_template(template).render(**context))
    save_artifact(qmodel, directory / "model.npz")
    manifest = {
        "hwlenet_version": __version__,
        "arch": qmodel.arch,
        "array": {"rows": rows, "cols": cols},
        "vectors": count,
        "analytic": model,
        "traced_layers": layers,
        "widths": {"weight": plan.weight_width, "operand": plan.operand_width,
                   "accumulator": plan.accumulator_width, "value": width,
                   "logit": logit_width},
        "artifact": qmodel.manifest(),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                             + "\n")
    return manifest
