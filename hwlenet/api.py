"""The library without the command line: the few calls a script needs, with the CLI's defaults.

Each function is a thin layer over the module that does the work; :mod:`hwlenet` exports them
(``hwlenet.quantize``, ``hwlenet.simulate``, ...). Errors in the caller's input raise
:class:`~hwlenet.errors.HwlenetError`.
"""

from .checkpoint import DEFAULT_MODEL, resolve_model
from .data import load_mnist
from .errors import HwlenetError

__all__ = ["cosim", "emit_verilog", "load_model", "quantize", "simulate"]

#: Training images the quantizer calibrates on by default (as ``hwlenet quantize --calib``).
DEFAULT_CALIBRATION_IMAGES = 1000


def load_model(name_or_path=DEFAULT_MODEL):
    """A float LeNet-5: a shipped model by name (``lenet5-classic``, ``lenet5-classic-fc``,
    ``lenet5-relu``) or a checkpoint written by ``hwlenet train``, in eval mode."""
    return resolve_model(name_or_path)[0]


def quantize(model=DEFAULT_MODEL, calibration_images=None, *, bits=8, weight_bits=None,
             act_bits=None, data_dir=None, **options):
    """Quantize a float LeNet-5 to the artifact every later stage obeys.

    Parameters
    ----------
    model : str, path-like or torch.nn.Module
        A shipped model's name, a checkpoint path, or a model from :func:`load_model`.
    calibration_images : numpy.ndarray of uint8, shape (N, 28, 28), optional
        By default the first 1000 MNIST training images from the resolved data source
        (``data_dir``, ``$HWLENET_DATA``, the per-user cache or the embedded sample).
    bits, weight_bits, act_bits : int
        Widths (``weight_bits`` and ``act_bits`` default to ``bits``).
    **options
        ``rounding``, ``overflow``, ``method``, ``percentile``, ``config`` of
        :func:`hwlenet.quant.quantize.quantize_model`.

    Returns
    -------
    hwlenet.quant.QuantizedModel
    """
    from .quant.quantize import quantize_model

    if isinstance(model, str) or hasattr(model, "__fspath__"):
        float_model, meta, label = resolve_model(str(model))
        provenance = {"model": label, "model_meta": meta}
        if options.get("config") is None:
            from .quant.qat import config_from_checkpoint

            options["config"] = config_from_checkpoint(meta) or None
    else:
        float_model, provenance = model, {"model": type(model).__name__}
    if calibration_images is None:
        split = load_mnist("train", data_dir).head(DEFAULT_CALIBRATION_IMAGES)
        calibration_images = split.images
        provenance["calibration_split"] = "train"
    return quantize_model(float_model, calibration_images,
                          bits if weight_bits is None else weight_bits,
                          bits if act_bits is None else act_bits, provenance=provenance,
                          **options)


def simulate(qmodel, images, trace=False):
    """Run the bit-accurate integer model of ``qmodel`` (a :class:`QuantizedModel` or an
    artifact path) on uint8 ``images`` ``(N, 28, 28)``.

    Returns
    -------
    hwlenet.sim.SimulationResult
        ``logits`` (integers: the reduced penalties for an RBF output, whose class is their
        argmin), ``classes`` and, with ``trace``, every layer's outputs.
    """
    from .quant.artifact import load_artifact
    from .sim import simulate as run

    if not hasattr(qmodel, "layers"):
        qmodel = load_artifact(qmodel)
    return run(qmodel, images, trace=trace)


def emit_verilog(qmodel, directory, rows=8, cols=8, images=None, *, cover=False, trace=True):
    """Write ``qmodel``'s accelerator on a ``rows x cols`` array as Verilog into ``directory``,
    with a self-checking testbench over ``images`` (optional); returns the export's manifest.
    See :func:`hwlenet.verify.emit.emit_verilog`."""
    from .quant.artifact import load_artifact
    from .verify.emit import emit_verilog as emit

    if not hasattr(qmodel, "layers"):
        qmodel = load_artifact(qmodel)
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise HwlenetError(f"rows and cols must be integers, not {rows!r} and {cols!r}")
    return emit(qmodel, directory, rows, cols, images, cover=cover, trace=trace)


def cosim(directory, simulator="verilator", images=None, jobs=None):
    """Co-simulate an export on ``simulator`` (``verilator``, ``icarus`` or ``amaranth``) and
    compare the RTL with the integer model bit for bit; returns the report (``bit_exact``,
    ``mismatches``, ``first_mismatch``, cycles...), running ``jobs`` simulator processes (one per
    CPU by default). See :func:`hwlenet.verify.cosim.run_cosim`."""
    from .verify.cosim import run_cosim

    return run_cosim(directory, simulator, images, jobs)
