"""The ``hwlenet`` command line: parses arguments and calls the library."""

import json
from pathlib import Path

import click

from .errors import HwlenetError


class _Group(click.Group):
    """Reports :class:`HwlenetError` as a one-line error with exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HwlenetError as error:
            raise click.ClickException(str(error)) from None


def write_json(path, payload):
    """Write ``payload`` as indented, key-sorted JSON when ``path`` is given."""
    if path:
        try:
            Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        except OSError as error:
            raise HwlenetError(f"cannot write {path}: {error.strerror}") from None


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="folder with the MNIST IDX files (default: $HWLENET_DATA)",
)
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="also write the results as JSON to this file")
limit_option = click.option("--limit", type=click.IntRange(min=1), default=None,
                            help="use only the first N test images")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwlenet")
def main():
    """hwlenet: LeNet-5 from float to bit-exact fixed point and RTL, with open tools only."""


@main.command()
@click.option("--arch", type=click.Choice(["classic", "relu"]), default="classic",
              show_default=True)
@data_dir_option
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="checkpoint to write")
@json_option
def train(arch, data_dir, epochs, seed, batch_size, lr, out, json_path):
    """Train a float LeNet-5 with augmentation and write a checkpoint."""
    import torch

    from .checkpoint import save_checkpoint
    from .data import load_mnist
    from .train import train_model

    torch.manual_seed(seed)
    train_split = load_mnist("train", data_dir)
    test_split = load_mnist("test", data_dir)
    model, meta = train_model(arch, train_split, test_split, epochs=epochs, seed=seed,
                              batch_size=batch_size, lr=lr)
    meta["command"] = (f"hwlenet train --arch {arch} --epochs {epochs} --seed {seed} "
                       f"--batch-size {batch_size} --lr {lr}")
    save_checkpoint(model, out, meta)
    click.echo(f"{arch}: test accuracy {meta['test_accuracy']:.4f} on {meta['test_images']} "
               f"images; wrote {out}")
    write_json(json_path, {"model": str(out), **meta})


@main.command()
@click.argument("model", required=False, default=None)
@data_dir_option
@limit_option
@json_option
def evaluate(model, data_dir, limit, json_path):
    """Float accuracy of MODEL on the MNIST test set.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default) or lenet5-relu.
    """
    from .checkpoint import resolve_model
    from .data import load_mnist
    from .train import evaluate_model

    float_model, meta, label = resolve_model(model)
    test_split = load_mnist("test", data_dir).head(limit)
    accuracy = evaluate_model(float_model, test_split)
    click.echo(f"{label} ({float_model.arch}): float accuracy {accuracy:.4f} "
               f"on {len(test_split)} test images")
    write_json(json_path, {"model": label, "arch": float_model.arch, "images": len(test_split),
                           "accuracy": accuracy})


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
@click.option("--rounding", type=click.Choice(["half_up", "half_even", "floor"]),
              default="half_up", show_default=True)
@click.option("--overflow", type=click.Choice(["saturate", "wrap"]), default="saturate",
              show_default=True)
@click.option("--calib", type=int, default=1000, show_default=True,
              help="number of training images for calibration")
@click.option("--calib-method", type=click.Choice(["maxabs", "percentile"]), default="maxabs",
              show_default=True)
@click.option("--percentile", type=float, default=99.99, show_default=True)
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="quantized artifact to write (.npz)")
@json_option
def quantize(model, bits, weight_bits, act_bits, config_path, rounding, overflow, calib,
             calib_method, percentile, data_dir, out, json_path):
    """Quantize MODEL to fixed point and write the artifact every later stage obeys.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default) or lenet5-relu.
    """
    from .checkpoint import resolve_model
    from .data import load_mnist
    from .quant.artifact import save_artifact
    from .quant.quantize import load_config, quantize_model, validate_bits

    validate_bits("--bits", bits)
    weight_bits = validate_bits("--weight-bits", bits if weight_bits is None else weight_bits)
    act_bits = validate_bits("--act-bits", bits if act_bits is None else act_bits)
    if calib < 1:
        raise HwlenetError(f"--calib must be at least 1 image, not {calib}")
    config = load_config(config_path)
    float_model, meta, label = resolve_model(model)
    train_split = load_mnist("train", data_dir).head(calib)
    qmodel = quantize_model(
        float_model, train_split.images, weight_bits, act_bits, rounding, overflow,
        calib_method, percentile, config,
        provenance={"model": label, "model_meta": meta, "calibration_split": "train"},
    )
    save_artifact(qmodel, out)
    click.echo(f"{label}: W{weight_bits}A{act_bits} {rounding}/{overflow}, calibrated on "
               f"{len(train_split)} training images; wrote {out}")
    for layer in qmodel.layers:
        if layer.has_weights:
            click.echo(f"  {layer.name:4} w {layer.weight_format}  out {layer.output_format}  "
                       f"acc {layer.accumulator_width} bits")
    write_json(json_path, {"artifact": str(out), "model": label, **qmodel.manifest()})


@main.command()
@click.argument("qmodel", type=click.Path(dir_okay=False))
@data_dir_option
@limit_option
@json_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="draw per-layer SQNR and error to this PNG")
def simulate(qmodel, data_dir, limit, json_path, plot_path):
    """Bit-accurate simulation of QMODEL on the test set, against its float model."""
    from .data import load_mnist
    from .quant.artifact import load_artifact
    from .sim.simulator import compare_with_float

    artifact = load_artifact(qmodel)
    test_split = load_mnist("test", data_dir).head(limit)
    report = compare_with_float(artifact, test_split.images, test_split.labels, progress=True)
    click.echo(f"{qmodel} ({artifact.arch}) on {report['images']} test images: float accuracy "
               f"{report['float_accuracy']:.4f}, fixed accuracy {report['fixed_accuracy']:.4f}, "
               f"agreement {report['agreement']:.4f}")
    for row in report["layers"]:
        click.echo(f"  {row['name']:4} SQNR {row['sqnr_db']:6.2f} dB   max |error| "
                   f"{row['max_abs_error']:.4g}")
    if plot_path:
        from .plots import plot_layer_errors

        plot_layer_errors(report, plot_path, title=f"{qmodel} ({artifact.arch})")
        click.echo(f"wrote {plot_path}")
    write_json(json_path, {"artifact": str(qmodel), "arch": artifact.arch, **report})


def _echo_coverage(coverage):
    """Per-layer table and weight coverage of the exported vectors."""
    if not coverage:
        return
    click.echo(f"  coverage of the {coverage['images']} vectors:")
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
            click.echo(f"    {row['name']:4} " + ", ".join(parts))
        if table and table["missed"]:
            runs = ", ".join(f"{low}..{high}" for low, high in table["missed"][:4])
            if len(table["missed"]) > 4:
                runs += f" and {len(table['missed']) - 4} more runs"
            click.echo(f"         never indexed (reachable as far as the bounds tell): {runs}")
        for run in table["unreachable"] if table else []:
            click.echo(f"         unreachable {run['low']}..{run['high']}: {run['reason']}")


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
@data_dir_option
@json_option
def emit_verilog_command(qmodel, out_dir, array, vectors, cover, trace, data_dir, json_path):
    """Write QMODEL's accelerator as Verilog with a self-checking testbench."""
    from .data import load_mnist
    from .quant.artifact import load_artifact
    from .verify.emit import emit_verilog
    from .rtl.plan import parse_array

    rows, cols = parse_array(array)
    artifact = load_artifact(qmodel)
    images = None
    if vectors:
        test_split = load_mnist("test", data_dir)
        if vectors > len(test_split):
            raise HwlenetError(f"--vectors {vectors} exceeds the {len(test_split)} test images")
        images = test_split.head(vectors).images
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
    write_json(json_path, manifest)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--simulator", type=click.Choice(["verilator", "icarus", "amaranth"]),
              default="verilator", show_default=True)
@click.option("--images", type=click.IntRange(min=1), default=None,
              help="how many exported vectors to run (default: all)")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="simulator processes in parallel (Verilator, Icarus)")
@click.option("--wave", is_flag=True,
              help="also write a waveform ending at the first mismatch (whole run if short)")
@json_option
def cosim(directory, simulator, images, jobs, wave, json_path):
    """Co-simulate an exported DIRECTORY and check the RTL bit for bit."""
    from .verify.cosim import read_export, run_cosim

    manifest = read_export(directory)
    count = images or manifest["vectors"]
    click.echo(f"cosim: building and running the {simulator} bench on {count} images "
               f"({jobs} process{'es' if jobs > 1 else ''})...", err=True)
    report = run_cosim(directory, simulator, images, jobs, wave=wave)
    write_json(json_path, report)
    verdict = "bit-exact" if report["bit_exact"] else "MISMATCH"
    line = f"{simulator}: {report['images']} images, {report['mismatches']} mismatches, {verdict}"
    if report["images"]:
        line += (f"; {report['cycles_per_image']:.1f} cycles per image (analytic "
                 f"{report['analytic_cycles_per_image']:.1f}; this run {report['cycles']} "
                 f"cycles, model {report['predicted_cycles']}); "
                 f"{report['images_per_second']:.1f} images/s")
    click.echo(line)
    hang = report["hang"]
    if hang:
        click.echo(f"hang: no result for image {hang['image']} within the watchdog; the last "
                   f"layer that made progress is {hang['last_layer']} (cycle {hang['cycle']})")
    first = report["first_mismatch"]
    if first and first["kind"] != "hang":
        click.echo(f"first mismatch: image {first['image']}, layer {first['layer']}, element "
                   f"{first['element']}: expected {first['expected']}, got {first['actual']} "
                   f"({first['kind']}, cycle {first['cycle']})")
    if report["wave"]:
        click.echo(f"waveform: {report['wave']['path']}  (open: {report['wave']['open']})")
    _echo_coverage(report["coverage"])
    if not report["bit_exact"]:
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--faults", type=click.IntRange(min=1), default=50, show_default=True,
              help="single-bit faults drawn over every ROM bit")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="bench processes in parallel")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True)
@json_option
def faultcheck(directory, faults, seed, jobs, simulator, json_path):
    """Flip random bits in DIRECTORY's ROMs and show that its bench catches them.

    Each fault is caught (the bench reports a mismatch: the first diverging layer is named),
    missed (with the reason: never used by the vectors, or absorbed by ReLU, rounding or
    saturation) or unobservable (provably unable to change any output). Exits with status 1
    when an observable fault is missed.
    """
    from .verify.faultcheck import run_faultcheck

    report = run_faultcheck(directory, faults, seed, jobs, simulator, progress=True)
    write_json(json_path, report)
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
                       f"({fault['layer']} {fault['role']}): {fault['reason']}")
    if summary["missed"]:
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--target", required=True,
              help="ecp5-25f, ecp5-45f, ecp5-85f (LFE5U, CABGA381, speed 6), ice40-up5k (sg48) "
                   "or generic (Yosys cell counts only)")
@click.option("--trace", is_flag=True, help="keep the trace port's logic (removed by default)")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="nextpnr placement seed")
@click.option("--freq", "frequency_mhz", type=click.FloatRange(min=0, min_open=True),
              default=None, help="clock constraint in MHz (default: 125 for ECP5, 48 for iCE40)")
@json_option
def synth(directory, target, trace, seed, frequency_mhz, json_path):
    """Synthesize, place and route an exported DIRECTORY with Yosys and nextpnr from PyPI.

    Prints the resources used against the device's, Fmax, cycles and images per second and
    whether it fits; logs and report.json go to DIRECTORY/synth/TARGET/.
    """
    from .synth import synthesize
    from .synth.report import ProgressLine, format_report

    progress = ProgressLine()
    try:
        report = synthesize(directory, target=target, trace=trace, seed=seed,
                            frequency_mhz=frequency_mhz, progress=progress)
    finally:
        progress.close()
    write_json(json_path, report)
    for line in format_report(report):
        click.echo(line)
    click.echo(f"  logs and report.json: {report['folder']}")
