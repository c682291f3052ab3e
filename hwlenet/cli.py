"""The ``hwlenet`` command line: parses arguments and calls the library.

Exit status: 0 on success; 1 when a verification finds the design wrong (a co-simulation
mismatch, a fault the bench misses); 2 for every usage or input error, missing tool, unwritable
output or interrupted run, which print exactly one line ``Error: ...`` on stderr. Every command
that reads MNIST says on stderr, in one line, where the images came from and how many it used.
"""

import sys

import click

from .errors import EXIT_INPUT_ERROR, EXIT_MISMATCH, HwlenetError
from .outputs import atomic_path, check_writable, write_json


def _one_line(text):
    return " ".join(str(text).split())


class _Group(click.Group):
    """Reports every usage error, :class:`HwlenetError` and interruption as one line
    ``Error: ...`` on stderr with exit status 2 (:data:`~hwlenet.errors.EXIT_INPUT_ERROR`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            hint = ""
            if error.ctx is not None:
                hint = f" (see: {error.ctx.command_path} --help)"
            self._fail(error.format_message() + hint)
        except click.ClickException as error:
            self._fail(error.format_message())
        except HwlenetError as error:
            self._fail(str(error))
        except (KeyboardInterrupt, click.Abort):
            self._fail("interrupted; files not yet complete were not written")
        sys.exit(code if isinstance(code, int) else 0)

    @staticmethod
    def _fail(message):
        sys.stdout.flush()
        click.echo(f"Error: {_one_line(message)}", err=True)
        sys.exit(EXIT_INPUT_ERROR)


class _LibraryChoice(click.Choice):
    """A :class:`click.Choice` whose choices a library constant provides, imported on first use
    (so that ``hwlenet --help`` does not import torch)."""

    def __init__(self, load):
        self._load = load
        self._choices = None
        self.case_sensitive = True

    @property
    def choices(self):
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value):
        self._choices = tuple(value)


def _architectures():
    from .models import ARCHITECTURES

    return ARCHITECTURES


def _rounding_modes():
    from .quant.fixed import ROUNDING_MODES

    return ROUNDING_MODES


def _overflow_modes():
    from .quant.fixed import OVERFLOW_MODES

    return OVERFLOW_MODES


def _calibration_methods():
    from .quant.quantize import CALIBRATION_METHODS

    return CALIBRATION_METHODS


def _simulators():
    from .verify.cosim import SIMULATORS

    return SIMULATORS


def _bench_simulators():
    from .verify.cosim import BENCHES

    return BENCHES


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def echo_data(*uses):
    """One line on stderr: how many images of which split each use took, and from where.

    ``uses`` are ``(label, MnistSplit)`` pairs, e.g. ``("test", split)``.
    """
    sources = {}
    for label, split in uses:
        sources.setdefault(split.source, []).append(f"{len(split)} {label}")
    parts = [f"{' and '.join(counts)} images from {source}" for source, counts in sources.items()]
    click.echo("data: " + "; ".join(parts), err=True)


def load_split(split, data_dir, count=None):
    """``count`` images (all when None) of MNIST ``split`` from the resolved data source."""
    from .data import load_mnist

    return load_mnist(split, data_dir).head(count)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="folder with the MNIST IDX files (default: $HWLENET_DATA, then the per-user cache "
         "~/.cache/hwlenet/mnist, downloaded when possible, then the embedded sample)",
)
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="also write the results as JSON to this file")
calib_option = click.option("--calib", type=click.IntRange(min=1), default=1000,
                            show_default=True, help="number of training images for calibration")
limit_option = click.option("--limit", type=click.IntRange(min=1), default=None,
                            help="use only the first N test images")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwlenet")
def main():
    """hwlenet: LeNet-5 from float to bit-exact fixed point and RTL, with open tools only."""


@main.command()
@click.option("--arch", type=_LibraryChoice(_architectures), default="classic",
              show_default=True)
@data_dir_option
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True), default=2e-3,
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="checkpoint to write")
@json_option
def train(arch, data_dir, epochs, seed, batch_size, lr, out, json_path):
    """Train a float LeNet-5 with augmentation and write a checkpoint."""
    import torch

    from .checkpoint import save_checkpoint
    from .train import train_model

    check_writable(out, "--out")
    if json_path:
        check_writable(json_path, "--json")
    torch.manual_seed(seed)
    train_split = load_split("train", data_dir)
    test_split = load_split("test", data_dir)
    echo_data(("training", train_split), ("test", test_split))
    model, meta = train_model(arch, train_split, test_split, epochs=epochs, seed=seed,
                              batch_size=batch_size, lr=lr)
    meta["command"] = (f"hwlenet train --arch {arch} --epochs {epochs} --seed {seed} "
                       f"--batch-size {batch_size} --lr {lr}")
    save_checkpoint(model, out, meta, option="--out")
    click.echo(f"{arch}: test accuracy {meta['test_accuracy']:.4f} on {meta['test_images']} "
               f"images; wrote {out}")
    write_json(json_path, {"model": str(out), **meta}, "--json")


@main.command()
@click.argument("model", required=False, default=None)
@data_dir_option
@limit_option
@json_option
def evaluate(model, data_dir, limit, json_path):
    """Float accuracy of MODEL on the MNIST test set.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default, with the paper's
    RBF output), lenet5-classic-fc or lenet5-relu.
    """
    from .checkpoint import resolve_model
    from .train import evaluate_model

    if json_path:
        check_writable(json_path, "--json")
    float_model, meta, label = resolve_model(model)
    test_split = load_split("test", data_dir, limit)
    echo_data(("test", test_split))
    accuracy = evaluate_model(float_model, test_split)
    click.echo(f"{label} ({float_model.arch}): float accuracy {accuracy:.4f} "
               f"on {len(test_split)} test images")
    write_json(json_path, {"model": label, "arch": float_model.arch, "images": len(test_split),
                           "accuracy": accuracy}, "--json")


def _bits_option(name, help_text):
    return click.option(name, type=int, default=None, help=help_text)


@main.command()
@click.argument("model", required=False, default=None)
@click.option("--bits", type=int, default=8, show_default=True,
              help="width of weights and activations, 2..32")
@_bits_option("--weight-bits", "weight width (default: --bits)")
@_bits_option("--act-bits", "activation width (default: --bits)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file of per-layer format overrides")
@click.option("--rounding", type=_LibraryChoice(_rounding_modes), default="half_up",
              show_default=True)
@click.option("--overflow", type=_LibraryChoice(_overflow_modes), default="saturate",
              show_default=True)
@calib_option
@click.option("--calib-method", type=_LibraryChoice(_calibration_methods), default="maxabs",
              show_default=True)
@click.option("--percentile", type=float, default=99.99, show_default=True)
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="quantized artifact to write (.npz)")
@json_option
def quantize(model, bits, weight_bits, act_bits, config_path, rounding, overflow, calib,
             calib_method, percentile, data_dir, out, json_path):
    """Quantize MODEL to fixed point and write the artifact every later stage obeys.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default, with the paper's
    RBF output), lenet5-classic-fc or lenet5-relu.
    """
    from .checkpoint import resolve_model
    from .quant.artifact import save_artifact
    from .quant.quantize import check_config, load_config, quantize_model, validate_bits

    validate_bits("--bits", bits)
    weight_bits = validate_bits("--weight-bits", bits if weight_bits is None else weight_bits)
    act_bits = validate_bits("--act-bits", bits if act_bits is None else act_bits)
    check_writable(out, "--out")
    if json_path:
        check_writable(json_path, "--json")
    config = load_config(config_path)
    float_model, meta, label = resolve_model(model)
    if config_path is None:
        from .quant.qat import config_from_checkpoint

        config = config_from_checkpoint(meta)  # a QAT checkpoint's formats, else {}
    check_config(config, float_model, config_path)
    train_split = load_split("train", data_dir, calib)
    echo_data(("training", train_split))
    try:
        qmodel = quantize_model(
            float_model, train_split.images, weight_bits, act_bits, rounding, overflow,
            calib_method, percentile, config,
            provenance={"model": label, "model_meta": meta, "calibration_split": "train"},
        )
    except HwlenetError as error:
        if config_path is None:
            raise
        raise HwlenetError(f"{error} (with --config {config_path})") from None
    save_artifact(qmodel, out, option="--out")
    if config_path is None and config:
        widths = f"the widths QAT recorded in it (not --bits), {rounding}/{overflow}"
    else:
        widths = f"W{weight_bits}A{act_bits} {rounding}/{overflow}"
        if config_path is not None:
            widths += f" where --config {config_path} sets no format"
    click.echo(f"{label}: {widths}, calibrated on {len(train_split)} training images; "
               f"wrote {out}")
    for layer in qmodel.layers:
        if layer.is_rbf:
            click.echo(f"  {layer.name:4} RBF: {layer.codes.shape[0]} codes of "
                       f"{layer.codes.shape[1]}, weights -2c {layer.weight_format}  penalties "
                       f"{layer.output_format}  acc {layer.accumulator_width} bits; class = argmin")
        elif layer.has_weights:
            click.echo(f"  {layer.name:4} w {layer.weight_format}  out {layer.output_format}  "
                       f"acc {layer.accumulator_width} bits")
    write_json(json_path, {"artifact": str(out), "model": label, **qmodel.manifest()}, "--json")


@main.command()
@click.argument("qmodel", type=click.Path(dir_okay=False))
@data_dir_option
@limit_option
@json_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="draw per-layer SQNR and error to this PNG")
def simulate(qmodel, data_dir, limit, json_path, plot_path):
    """Bit-accurate simulation of QMODEL on the test set, against its float model."""
    from .quant.artifact import load_artifact
    from .sim.simulator import compare_with_float

    for path, option in ((json_path, "--json"), (plot_path, "--plot")):
        if path:
            check_writable(path, option)
    artifact = load_artifact(qmodel)
    test_split = load_split("test", data_dir, limit)
    echo_data(("test", test_split))
    report = compare_with_float(artifact, test_split.images, test_split.labels, progress=True)
    click.echo(f"{qmodel} ({artifact.arch}) on {report['images']} test images: float accuracy "
               f"{report['float_accuracy']:.4f}, fixed accuracy {report['fixed_accuracy']:.4f}, "
               f"agreement {report['agreement']:.4f}")
    if report["output_rule"] == "argmin":
        last = artifact.layers[-1]
        click.echo(f"  output: RBF penalties P = {last.weight.shape[1]}*2^{last.acc_frac} - "
                   f"2 c.X ({last.output_format}), class = argmin, lowest index on ties")
    for row in report["layers"]:
        click.echo(f"  {row['name']:4} SQNR {row['sqnr_db']:6.2f} dB   max |error| "
                   f"{row['max_abs_error']:.4g}")
    if plot_path:
        from .plots import plot_layer_errors

        with atomic_path(plot_path, "--plot") as temporary:
            # matplotlib picks the format from the suffix; the temporary name has none
            with open(temporary, "wb") as handle:
                plot_layer_errors(report, handle, title=f"{qmodel} ({artifact.arch})")
        click.echo(f"wrote {plot_path}")
    write_json(json_path, {"artifact": str(qmodel), "arch": artifact.arch, **report}, "--json")


def _echo_coverage(coverage):
    """Per-layer table and weight coverage of the exported vectors."""
    for line in _coverage_lines(coverage):
        click.echo(line)


def _coverage_lines(coverage):
    if not coverage:
        return []
    lines = [f"  coverage of the {coverage['images']} vectors:"]
    for row in coverage["layers"]:
        parts = []
        table, weights = row["table"], row["weights"]
        if table:
            parts.append(f"table {table['hit']}/{table['reachable']} reachable entries "
                         f"({table['fraction_of_reachable']:.1%}; {table['entries']} in all)")
        if weights:
            parts.append(f"weights {weights['exercised']}/{weights['words']} exercised "
                         f"({weights['fraction']:.1%})")
            if weights["live"] != weights["exercised"]:
                parts.append(f"{weights['live']} live ({weights['live_fraction']:.1%})")
        if parts:
            lines.append(f"    {row['name']:4} " + ", ".join(parts))
        if table and table["missed"]:
            runs = ", ".join(f"{low}..{high}" for low, high in table["missed"][:4])
            if len(table["missed"]) > 4:
                runs += f" and {len(table['missed']) - 4} more runs"
            lines.append(f"         never indexed (reachable as far as the bounds tell): {runs}")
        for run in table["unreachable"] if table else []:
            lines.append(f"         unreachable {run['low']}..{run['high']}: {run['reason']}")
    return lines


@main.command("emit-verilog")
@click.argument("qmodel", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="folder to write")
@click.option("--array", "array", default="8x8", show_default=True,
              help="systolic array size ROWSxCOLS")
@click.option("--vectors", type=click.IntRange(min=0), default=0, show_default=True,
              help="number of test images to export as self-checking vectors")
@click.option("--cover", is_flag=True,
              help="append directed vectors that index every reachable table entry")
@click.option("--trace/--no-trace", default=True, show_default=True,
              help="give the design its trace port (checked layer by layer); an FPGA build "
                   "leaves it out and the bench then checks results only")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="per-layer formats (e.g. from hwlenet autotune) that QMODEL must have; "
                   "refuses an artifact quantized otherwise")
@data_dir_option
@json_option
def emit_verilog_command(qmodel, out_dir, array, vectors, cover, trace, config_path, data_dir,
                         json_path):
    """Write QMODEL's accelerator as Verilog with a self-checking testbench.

    The hardware is sized from the artifact's formats alone (the widest in use); --config only
    checks that they are the ones asked for.
    """
    from .quant.artifact import load_artifact
    from .quant.quantize import check_artifact_config, load_config
    from .rtl.plan import parse_array
    from .verify.emit import emit_verilog

    try:
        rows, cols = parse_array(array)
    except HwlenetError as error:
        raise HwlenetError(f"--array {array}: {error}") from None
    check_writable(out_dir, "--out", directory=True)
    if json_path:
        check_writable(json_path, "--json")
    config = load_config(config_path)
    artifact = load_artifact(qmodel)
    check_artifact_config(artifact, config, config_path)
    images = None
    if vectors:
        test_split = load_split("test", data_dir)
        if vectors > len(test_split):
            raise HwlenetError(f"--vectors {vectors} exceeds the {len(test_split)} test images "
                               f"of {test_split.source}")
        test_split = test_split.head(vectors)
        echo_data(("test", test_split))
        images = test_split.images
    manifest = emit_verilog(artifact, out_dir, rows, cols, images, cover=cover, progress=True,
                            trace=trace)
    model = manifest["analytic"]
    click.echo(f"wrote {out_dir}: {artifact.arch} on a {rows}x{cols} array, "
               f"{manifest['vectors']} test vectors ({manifest['directed_vectors']} directed)"
               + ("" if trace else ", no trace port (results checked only)"))
    _echo_coverage(manifest["coverage"])
    click.echo(f"  analytic {model['cycles_per_image']:.0f} cycles per image, utilization "
               f"{model['utilization']:.1%} ({model['nonzero_utilization']:.1%} counting "
               "non-zero weights only)")
    for row in model["layers"]:
        click.echo(f"  {row['name']:4} {row['cycles_per_image']:8.1f} cycles/image  "
                   f"utilization {row['utilization']:.1%}")
    click.echo(f"run it: make -C {out_dir} sim   (or: hwlenet cosim {out_dir})")
    write_json(json_path, manifest, "--json")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--simulator", type=_LibraryChoice(_simulators), default="verilator",
              show_default=True)
@click.option("--images", type=click.IntRange(min=1), default=None,
              help="how many exported vectors to run (default: all)")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="simulator processes in parallel, each on its own images (Verilator, "
                   "Icarus)  [default: one per CPU]")
@click.option("--wave", is_flag=True,
              help="also write a waveform ending at the first mismatch (whole run if short)")
@json_option
def cosim(directory, simulator, images, jobs, wave, json_path):
    """Co-simulate an exported DIRECTORY and check the RTL bit for bit.

    Exits with status 1 when the RTL disagrees with the exported vectors (or hangs), 2 when the
    folder or an option is bad.
    """
    from .verify.cosim import (bench_processes, check_image_count, read_export, require_tools,
                               run_cosim)

    if json_path:
        check_writable(json_path, "--json")
    manifest = read_export(directory)
    count = check_image_count(manifest, directory, images)
    require_tools(simulator)
    processes = bench_processes(simulator, jobs, count)
    click.echo(f"cosim: building and running the {simulator} bench on {count} images "
               f"({processes} process{'es' if processes > 1 else ''})...", err=True)
    report = run_cosim(directory, simulator, images, jobs, wave=wave, progress=True)
    write_json(json_path, report, "--json")
    for line in cosim_lines(report):
        click.echo(line)
    if not report["bit_exact"]:
        sys.exit(EXIT_MISMATCH)


def _number(value, spec):
    """``value`` formatted with ``spec``, or ``n/a`` when there is none (a run that checked no
    image has no cycles per image)."""
    return "n/a" if value is None else format(value, spec)


def cosim_lines(report):
    """The lines ``hwlenet cosim`` prints for a :func:`~hwlenet.verify.cosim.run_cosim` report."""
    verdict = "bit-exact" if report["bit_exact"] else "MISMATCH"
    line = (f"{report['simulator']}: {report['images']} images, {report['mismatches']} "
            f"mismatches, {verdict}")
    if report["images"]:
        line += (f"; {_number(report['cycles_per_image'], '.1f')} cycles per image (analytic "
                 f"{_number(report['analytic_cycles_per_image'], '.1f')}; this run "
                 f"{report['cycles']} cycles, model {report['predicted_cycles']}); "
                 f"{_number(report['images_per_second'], '.1f')} images/s")
    lines = [line]
    hang = report["hang"]
    if hang:
        lines.append(f"hang: no result for image {hang['image']} within the watchdog; the last "
                     f"layer that made progress is {hang['last_layer']} (cycle {hang['cycle']})")
    first = report["first_mismatch"]
    if first and first["kind"] != "hang":
        lines.append(f"first mismatch: image {first['image']}, layer {first['layer']}, element "
                     f"{first['element']}: expected {first['expected']}, got {first['actual']} "
                     f"({first['kind']}, cycle {first['cycle']})")
    if report["wave"]:
        lines.append(f"waveform: {report['wave']['path']}  (open: {report['wave']['open']})")
    coverage = report["coverage"]
    if coverage:
        lines += _coverage_lines(coverage)
    return lines


def _fault_role(fault):
    """A fault's memory role, naming the RBF codes when the RBF layer's weights are hit."""
    if fault.get("layer_kind") == "rbf" and fault["role"] == "weights":
        return "RBF code weights"
    return fault["role"]


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--faults", type=click.IntRange(min=1), default=50, show_default=True,
              help="single-bit faults drawn over every ROM bit")
@click.option("--register-faults", type=click.IntRange(min=0), default=20, show_default=True,
              help="register bits held stuck at 0 or 1, drawn over every register bit")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="bench processes in parallel  [default: one per CPU]")
@click.option("--simulator", type=_LibraryChoice(_bench_simulators), default="verilator",
              show_default=True)
@json_option
def faultcheck(directory, faults, register_faults, seed, jobs, simulator, json_path):
    """Flip random bits in DIRECTORY's ROMs and show that its bench catches them.

    Each fault is caught (the bench reports a mismatch: the first diverging layer is named),
    missed (with the reason: never used by the vectors, or absorbed by ReLU, rounding or
    saturation) or unobservable (provably unable to change any output). Register faults (one
    register bit stuck at 0 or 1 for the whole run) are unobservable when no logic reads the
    register, else caught or missed; a missed one says whether the vectors ever activated it.
    Exits with status 1 when an observable ROM fault is missed; missed register faults are
    listed, since nothing proves that they were observable.
    """
    from .verify.faultcheck import run_faultcheck

    if json_path:
        check_writable(json_path, "--json")
    report = run_faultcheck(directory, faults, seed, jobs, simulator, progress=True,
                            register_faults=register_faults)
    write_json(json_path, report, "--json")
    summary = report["summary"]
    click.echo(f"faultcheck {directory}: {summary['total']} faults over {report['rom_bits']} ROM "
               f"bits, {report['vectors']} vectors: {summary['caught']} caught, "
               f"{summary['missed']} missed, {summary['unobservable']} unobservable; "
               f"{summary['caught_fraction_of_observable']:.1%} of observable faults caught")
    for role, counts in sorted(report["by_role"].items()):
        click.echo(f"  {role:12} " + ", ".join(f"{counts.get(status, 0)} {status}" for status in
                                               ("caught", "missed", "unobservable")))
    for fault in report["faults"]:
        if fault["status"] == "missed":
            click.echo(f"  missed: {fault['memory']}[{fault['address']}] bit {fault['bit']} "
                       f"({fault['layer']} {_fault_role(fault)}): {fault['reason']}")
    registers = report["register_summary"]
    if registers["total"]:
        click.echo(f"  registers: {registers['total']} stuck-at faults over "
                   f"{report['register_bits']} register bits: {registers['caught']} caught, "
                   f"{registers['missed']} missed ({registers['missed_activated']} of them "
                   f"activated), {registers['unobservable']} unobservable")
        for block, counts in sorted(report["by_block"].items()):
            click.echo(f"  {block:12} " + ", ".join(f"{counts[status]} {status}"
                                                   for status in ("caught", "missed",
                                                                  "unobservable")))
        for fault in report["register_faults"]:
            if fault["status"] == "missed":
                click.echo(f"  missed: register {fault['register']} bit {fault['bit']} stuck at "
                           f"{fault['stuck_at']}: {fault['reason']}")
    if summary["missed"]:
        sys.exit(EXIT_MISMATCH)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--target", required=True,
              help="ecp5-25f, ecp5-45f, ecp5-85f (LFE5U, CABGA381, speed 6), orangecrab "
                   "(LFE5U-25F, CSFBGA285, speed 8), ice40-up5k (sg48) or generic (Yosys cell "
                   "counts only)")
@click.option("--trace", is_flag=True, help="keep the trace port's logic (removed by default)")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="nextpnr placement seed")
@click.option("--freq", "frequency_mhz", type=click.FloatRange(min=0, min_open=True),
              default=None, help="clock constraint in MHz (default: 125 for ECP5, 48 for iCE40)")
@click.option("--placer", type=click.Choice(["heap", "sa", "static"]), default=None,
              help="nextpnr's placer (default: heap; static spreads a large design over the "
                   "whole die)")
@click.option("--router", type=click.Choice(["router1", "router2"]), default=None,
              help="nextpnr's router (default: router1 on ECP5, nextpnr's own on iCE40)")
@click.option("--dsp-registers/--no-dsp-registers", default=True, show_default=True,
              help="on ECP5, move the flip-flops around each multiplier into the DSP block's "
                   "own registers (the same behaviour, cycle for cycle)")
@click.option("--bram-registers/--no-bram-registers", default=True, show_default=True,
              help="on ECP5, move the flip-flops that take a block RAM's word into the block's "
                   "own output registers (the same behaviour, cycle for cycle)")
@json_option
def synth(directory, target, trace, seed, frequency_mhz, placer, router, dsp_registers,
          bram_registers, json_path):
    """Synthesize, place and route an exported DIRECTORY with Yosys and nextpnr from PyPI.

    Prints the resources used against the device's, Fmax, cycles and images per second and
    whether it fits; logs and report.json go to DIRECTORY/synth/TARGET/.
    """
    from .synth import synthesize
    from .synth.report import ProgressLine, format_report

    if json_path:
        check_writable(json_path, "--json")
    progress = ProgressLine()
    try:
        report = synthesize(directory, target=target, trace=trace, seed=seed, placer=placer,
                            router=router, frequency_mhz=frequency_mhz,
                            dsp_registers=dsp_registers, bram_registers=bram_registers,
                            progress=progress)
    finally:
        progress.close()
    write_json(json_path, report, "--json")
    for line in format_report(report):
        click.echo(line)
    click.echo(f"  logs and report.json: {report['folder']}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: DIRECTORY/report.html)")
def report(directory, out):
    """Write one self-contained HTML page about an exported DIRECTORY and its results.

    Shows the model and its formats, accuracy and SQNR per layer, the cycle model and
    utilization, the co-simulation verdict, coverage, the fault campaign and synthesis, from
    the manifest and the result files found in DIRECTORY or its parent (evaluate.json,
    simulate.json, layers.png, sweep_bits.json, sweep_bits.png, cosim.json, faultcheck.json;
    DIRECTORY/synth/*/report.json). Missing results are left out with a note. Prints the path
    written; the sections left out are listed on stderr.
    """
    from .report import write_report

    path, notes = write_report(directory, out)
    for note in notes:
        click.echo(f"report: not shown: {note}", err=True)
    click.echo(str(path))


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--scheduler", default=None,
              help="address of a running Dask scheduler, e.g. tcp://HOST:8786 (default: start "
                   "a local cluster)")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="worker processes of the local cluster (default: one per CPU)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="explore",
              show_default=True,
              help="folder of the results and of every stage's cached result")
@data_dir_option
@json_option
def explore(spec_path, scheduler, workers, out_dir, data_dir, json_path):
    """Sweep the design space of SPEC (YAML or JSON) on a Dask cluster.

    Every stage of every point (quantize, simulate, emit, co-simulate, synthesize) is one task;
    results are cached under --out, so a re-run computes only what is missing. Writes
    results.csv, results.json and pareto.png into --out. Exits with status 1 when a point
    fails, is not bit-exact or does not take the predicted cycles.
    """
    from pathlib import Path

    from .explore import load_spec, start_client, sweep_data, write_results
    from .explore import explore as run_sweep

    spec = load_spec(spec_path)
    check_writable(out_dir, "--out", directory=True)
    if json_path:
        check_writable(json_path, "--json")
    data, splits = sweep_data(spec, data_dir)
    echo_data(*splits.items())
    client, cluster = start_client(scheduler, workers)
    try:
        click.echo(f"explore: {len(spec.points())} points on "
                   f"{_plural(len(client.scheduler_info()['workers']), 'worker')}; dashboard "
                   f"{client.dashboard_link}", err=True)
        summary = run_sweep(spec, out_dir, data, client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    paths = write_results(summary, Path(out_dir))
    write_json(json_path, summary, "--json")
    for line in explore_lines(summary):
        click.echo(line)
    click.echo(f"table: {paths['csv']}  plot: {paths['plot']}")
    bad = [row for row in summary["rows"]
           if row["error"] or row["bit_exact"] is False or row["cycles_exact"] is False]
    if bad:
        sys.exit(EXIT_MISMATCH)


def explore_lines(summary):
    """The sweep's table as text lines, then what was computed and what came from the cache."""
    lines = [f"{'model':16} {'precision':12} {'array':6} {'target':9} {'accuracy':>8} "
             f"{'exact':>5} {'cycles/img':>10} {'LUTs':>6} {'Fmax':>6} {'img/s':>7}"]
    for row in summary["rows"]:
        def cell(name, spec, width):
            value = row[name]
            return f"{'-':>{width}}" if value is None else f"{value:{spec}}"
        exact = "-" if row["bit_exact"] is None else ("yes" if row["bit_exact"] else "NO")
        lines.append(f"{row['model']:16} {row['precision']:12} {row['array'] or '-':6} "
                     f"{row['target'] or '-':9} {cell('accuracy', '8.2%', 8)} {exact:>5} "
                     f"{cell('cycles_per_image', '10.1f', 10)} {cell('luts', '6d', 6)} "
                     f"{cell('fmax_mhz', '6.1f', 6)} {cell('images_per_second', '7.0f', 7)}")
        if row["error"]:
            lines.append(f"  error: {row['error']}")
    lines.append(f"{summary['tasks']} tasks: {summary['computed']} computed, "
                 f"{summary['cached']} from the cache, in {summary['seconds']:.1f} s on "
                 f"{_plural(summary['workers'], 'worker')}")
    return lines


from .cli_lowbit import autotune_command, qat_command  # noqa: E402

main.add_command(qat_command)
main.add_command(autotune_command)
